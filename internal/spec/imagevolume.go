package spec

import (
	"path"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Image volumes (KEP-4639): a CRI Mount that names an image instead of a
// host path. The caller mounts the image's filesystem read-only on the host
// and resolves image_sub_path inside it (it needs the disk for that); the
// spec then bind-mounts the result at container_path.

// IsImageMount says whether m is an image volume rather than a host path
// mount: a set image field, even an empty one, or a sub path, which only
// means anything for an image.
func IsImageMount(m *runtimeapi.Mount) bool {
	return m.GetImage() != nil || m.GetImageSubPath() != ""
}

// ValidateImageMount checks an image volume request before anything is
// mounted for it. Every failure is ErrInvalidArgument, except id-mapped
// image volumes, which this release lacks (ErrUnimplemented).
func ValidateImageMount(m *runtimeapi.Mount) error {
	dst := m.GetContainerPath()
	switch {
	case m.GetImage().GetImage() == "":
		return errdefs.InvalidArgument("image volume at %s names no image", dst)
	case m.GetHostPath() != "":
		return errdefs.InvalidArgument("image volume at %s also sets host_path %q: the two are exclusive", dst, m.GetHostPath())
	case !m.GetReadonly():
		return errdefs.InvalidArgument("image volume at %s must be readonly: image volumes are read-only by definition", dst)
	case m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		return errdefs.InvalidArgument("image volume at %s cannot propagate mounts back to the host", dst)
	case len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0:
		return errdefs.New(errdefs.ErrUnimplemented, "id-mapped image volumes (at %s) are not supported in this cradle release", dst)
	}
	if _, ok := runtimeapi.MountPropagation_name[int32(m.GetPropagation())]; !ok {
		return errdefs.InvalidArgument("unknown mount propagation %d for %s", m.GetPropagation(), dst)
	}
	_, err := CleanImageSubPath(m.GetImageSubPath())
	if err != nil {
		return errdefs.InvalidArgument("image volume at %s: %v", dst, err)
	}
	return nil
}

// CleanImageSubPath returns sub cleaned, "" for the image root. Like
// kubelet's subPath it must be relative and may not contain "..": even
// where ".." would stay inside the image lexically, a symlink before it
// could make it leave.
func CleanImageSubPath(sub string) (string, error) {
	switch {
	case sub == "":
		return "", nil
	case strings.ContainsRune(sub, 0):
		return "", errdefs.InvalidArgument("image_sub_path %q contains a NUL byte", sub)
	case path.IsAbs(sub):
		return "", errdefs.InvalidArgument("image_sub_path %q must be relative to the image root", sub)
	case slices.Contains(strings.Split(sub, "/"), ".."):
		return "", errdefs.InvalidArgument("image_sub_path %q must not contain '..'", sub)
	}
	if c := path.Clean(sub); c != "." {
		return c, nil
	}
	return "", nil
}

// imageMount is the bind mount of the image volume m, whose prepared host
// source sources holds under the cleaned container path.
func imageMount(m *runtimeapi.Mount, sources map[string]string) (specs.Mount, error) {
	if err := ValidateImageMount(m); err != nil {
		return specs.Mount{}, err
	}
	dst := path.Clean(m.GetContainerPath())
	src := sources[dst]
	if src == "" {
		return specs.Mount{}, errdefs.FailedPrecondition("image volume at %s was not prepared on the host", dst)
	}
	// nosuid and nodev: an image volume carries data (models, assets), not
	// a way to gain privileges or reach devices. The overlay under it has
	// no submounts, so plain ro is already recursive.
	om := bind(src, dst, "rprivate", "ro", "nosuid", "nodev")
	for _, o := range m.GetMountOptions() {
		if !allowedMountOptions[o] {
			return specs.Mount{}, errdefs.InvalidArgument("mount option %q for %s is not allowed", o, dst)
		}
		if !slices.Contains(om.Options, o) {
			om.Options = append(om.Options, o)
		}
	}
	return om, nil
}

// criOrImageMount turns one CRI mount into an OCI mount and the
// propagation it needs from the rootfs ("" for none).
func criOrImageMount(m *runtimeapi.Mount, in *Input, sys System) (specs.Mount, string, error) {
	if !IsImageMount(m) {
		return criMount(m, in.Node.Host, in.Node.runtimeFeatures(in.Handler), sys)
	}
	dst := m.GetContainerPath()
	if !path.IsAbs(dst) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mount container_path %q is not absolute", dst)
	}
	if path.Clean(dst) == "/" {
		return specs.Mount{}, "", errdefs.InvalidArgument("a mount cannot replace the container's root")
	}
	om, err := imageMount(m, in.ImageMounts)
	return om, "", err
}
