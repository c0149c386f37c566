package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// Image volumes (CRI Mount.image, KEP-4639). Each one is a read-only
// overlay of the image's layers — lower dirs only, nothing can be written —
// mounted on the host at
//
//	<state>/containers/<id>/imagevols/<n>     the overlay (tmpfs: a reboot unmounts it)
//	<root>/containers/<id>/imagevols/<n>/l/k  short symlinks to its layer dirs
//
// and bind-mounted into the container by the OCI spec, at its sub path
// resolved inside the overlay. The volumes are in the intent record before
// anything is mounted, undo unmounts whatever it finds under imagevols/
// (record or not), and the container holds references on the volumes'
// layers like on its own: RemoveImage then removes the image record but the
// layers stay until the container goes, as for a container's own image.

// imageVolume is one image volume of a container, as recorded.
type imageVolume struct {
	ContainerPath string          `json:"containerPath"` // cleaned
	ImageID       digest.Digest   `json:"imageID"`
	ChainIDs      []digest.Digest `json:"chainIDs"`
	SubPath       string          `json:"subPath,omitempty"` // cleaned; "" is the image root
}

const imageVolsDir = "imagevols"

// volumeMount is where volume n of container id is mounted on the host.
func (m *Manager) volumeMount(id string, n int) string {
	return filepath.Join(m.bundle(id), imageVolsDir, strconv.Itoa(n))
}

// resolveImageVolumes checks the config's image volumes and finds their
// images, which kubelet has pulled: an absent one is ErrNotFound.
func (m *Manager) resolveImageVolumes(cfg *runtimeapi.ContainerConfig) ([]imageVolume, error) {
	var vols []imageVolume
	for _, mnt := range cfg.GetMounts() {
		if !spec.IsImageMount(mnt) {
			continue
		}
		if err := spec.ValidateImageMount(mnt); err != nil {
			return nil, err
		}
		dst := path.Clean(mnt.GetContainerPath())
		ref := mnt.GetImage().GetImage()
		img, ok, err := m.cfg.Images.Get(ref)
		if err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", dst, err)
		}
		if !ok {
			return nil, errdefs.NotFound("image volume at %s: image %q not found: pull it first", dst, ref)
		}
		sub, err := spec.CleanImageSubPath(mnt.GetImageSubPath())
		if err != nil {
			return nil, err
		}
		vols = append(vols, imageVolume{ContainerPath: dst, ImageID: img.ID, ChainIDs: img.ChainIDs, SubPath: sub})
	}
	return vols, nil
}

// acquireImageVolumes takes references on every volume's layers, all or
// none.
func (m *Manager) acquireImageVolumes(c *ctr) error {
	if c.volLayers {
		return nil
	}
	var held []digest.Digest
	for _, v := range c.rec.ImageVolumes {
		for _, l := range v.ChainIDs {
			if _, ok := m.cfg.Layers.Acquire(l); !ok {
				if len(held) > 0 {
					m.cfg.Layers.Release(held...)
				}
				return errdefs.NotFound("image volume at %s: layer %s of image %s is not in the layer store", v.ContainerPath, l, v.ImageID)
			}
			held = append(held, l)
		}
	}
	c.volLayers = true
	return nil
}

func (m *Manager) releaseImageVolumes(c *ctr) {
	if !c.volLayers {
		return
	}
	c.volLayers = false
	var all []digest.Digest
	for _, v := range c.rec.ImageVolumes {
		all = append(all, v.ChainIDs...)
	}
	if err := m.cfg.Layers.Release(all...); err != nil {
		m.log.Warn("release image volume layers", "id", c.rec.ID, "err", err)
	}
}

// mountImageVolumes mounts every image volume of c that is not mounted yet
// and returns the host source of each, by container path, for the spec.
func (m *Manager) mountImageVolumes(c *ctr) (map[string]string, error) {
	vols := c.rec.ImageVolumes
	if len(vols) == 0 {
		return nil, nil
	}
	if err := m.acquireImageVolumes(c); err != nil {
		return nil, err
	}
	sources := make(map[string]string, len(vols))
	for n, v := range vols {
		target := m.volumeMount(c.rec.ID, n)
		mounted, err := isMounted(target)
		if err != nil {
			return nil, fmt.Errorf("image volume at %s: %w", v.ContainerPath, err)
		}
		if !mounted {
			links := filepath.Join(m.dir(c.rec.ID), imageVolsDir, strconv.Itoa(n))
			if err := mountImage(links, target, m.lowerDirs(v.ChainIDs)); err != nil {
				return nil, fmt.Errorf("image volume at %s: %w", v.ContainerPath, err)
			}
		}
		src, err := resolveInImage(target, v.SubPath)
		if err != nil {
			return nil, fmt.Errorf("image volume at %s (image %s): %w", v.ContainerPath, v.ImageID, err)
		}
		sources[v.ContainerPath] = src
	}
	return sources, nil
}

// unmountImageVolumes unmounts every image volume under the bundle. It
// lists the directory rather than reading the record, so it also cleans a
// container whose record is gone.
func unmountImageVolumes(bundle string) error {
	dir := filepath.Join(bundle, imageVolsDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := unmountRootfs(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// mountImage mounts the read-only overlay of lowers (bottom to top) at
// target, with short relative lower dirs from linkDir as mountRootfs does.
// Overlay wants two lower dirs when it has no upper one: a one-layer image
// gets an empty directory below its layer.
func mountImage(linkDir, target string, lowers []string) error {
	if len(lowers) == 0 {
		return errdefs.InvalidArgument("image has no layers")
	}
	links := filepath.Join(linkDir, "l")
	for _, d := range []string{links, filepath.Join(linkDir, "empty"), target} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("prepare image mount: %w", err)
		}
	}
	rel := make([]string, 0, len(lowers)+1)
	for i := len(lowers) - 1; i >= 0; i-- { // overlay lists the top layer first
		if lowers[i] == "" {
			return errdefs.NotFound("an image layer is no longer in the layer store")
		}
		name := strconv.Itoa(i)
		link := filepath.Join(links, name)
		if cur, err := os.Readlink(link); err != nil || cur != lowers[i] {
			os.Remove(link)
			if err := os.Symlink(lowers[i], link); err != nil {
				return fmt.Errorf("prepare image mount: %w", err)
			}
		}
		rel = append(rel, "l/"+name)
	}
	if len(rel) == 1 {
		rel = append(rel, "empty")
	}
	data := "lowerdir=" + strings.Join(rel, ":")
	if len(data) >= maxMountData {
		return errdefs.InvalidArgument("image has too many layers (%d) for an overlay mount", len(lowers))
	}
	if err := mountOverlayIn(linkDir, target, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, data); err != nil {
		return fmt.Errorf("mount image overlay at %s: %w", target, err)
	}
	return nil
}

// resolveInImage resolves sub inside the image mounted at root and returns
// its host path. The kernel walks it (openat2 RESOLVE_BENEATH), so neither
// ".." nor a symlink, absolute or relative, can lead out of the image: such
// a path is ErrInvalidArgument, a missing one ErrNotFound. The overlay is
// read-only over immutable layers, so the path stays what was checked.
func resolveInImage(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open image mount: %w", err)
	}
	defer unix.Close(rfd)
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	var fd int
	for range 8 { // EAGAIN: a concurrent rename elsewhere; retry
		if fd, err = unix.Openat2(rfd, sub, how); !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return "", errdefs.NotFound("image_sub_path %q does not exist in the image", sub)
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return "", errdefs.InvalidArgument("image_sub_path %q leads out of the image (through a symlink)", sub)
	case err != nil:
		return "", fmt.Errorf("resolve image_sub_path %q: %w", sub, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", fmt.Errorf("resolve image_sub_path %q: %w", sub, err)
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
		return "", errdefs.InvalidArgument("image_sub_path %q is neither a directory nor a regular file", sub)
	}
	base, err1 := os.Readlink("/proc/self/fd/" + strconv.Itoa(rfd))
	real, err2 := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("resolve image_sub_path %q: %w", sub, err)
	}
	if real != base && !strings.HasPrefix(real, base+"/") { // the kernel promised; keep the promise checked
		return "", errdefs.InvalidArgument("image_sub_path %q resolves to %s, outside the image", sub, real)
	}
	return real, nil
}

// criMounts are the config's mounts with each image volume's image_ref set
// to the ID of the image mounted, as ContainerStatus reports them.
func (c Container) criMounts() []*runtimeapi.Mount {
	mounts := c.Config.GetMounts()
	if len(c.imageVolumes) == 0 {
		return mounts
	}
	ids := make(map[string]digest.Digest, len(c.imageVolumes))
	for _, v := range c.imageVolumes {
		ids[v.ContainerPath] = v.ImageID
	}
	out := make([]*runtimeapi.Mount, len(mounts))
	for i, mnt := range mounts {
		out[i] = mnt
		if id, ok := ids[path.Clean(mnt.GetContainerPath())]; ok && spec.IsImageMount(mnt) {
			// The config is shared: report a copy.
			cp := proto.Clone(mnt).(*runtimeapi.Mount)
			if cp.Image == nil {
				cp.Image = &runtimeapi.ImageSpec{}
			}
			cp.Image.ImageRef = id.String()
			out[i] = cp
		}
	}
	return out
}
