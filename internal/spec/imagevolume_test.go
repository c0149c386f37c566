package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func imageVol(dst string, mutate ...func(*runtimeapi.Mount)) *runtimeapi.Mount {
	m := &runtimeapi.Mount{ContainerPath: dst, Readonly: true, Image: &runtimeapi.ImageSpec{Image: "sha256:abc"}}
	for _, f := range mutate {
		f(m)
	}
	return m
}

func TestImageMountBindsPreparedSourceReadOnly(t *testing.T) {
	in, sys := testInput()
	sys.dirs["/srv/data"] = true
	in.Config.Mounts = []*runtimeapi.Mount{
		imageVol("/models/"),
		imageVol("/etc/app", func(m *runtimeapi.Mount) {
			m.ImageSubPath = "etc/app"
			m.MountOptions = []string{"noexec", "nosuid"}
			m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		}),
		{ContainerPath: "/data", HostPath: "/srv/data"},
	}
	in.ImageMounts = map[string]string{
		"/models":  "/run/cradle/containers/c1/imagevols/0",
		"/etc/app": "/run/cradle/containers/c1/imagevols/1/etc/app",
	}
	s := mustBuild(t, in)
	want := map[string]specs.Mount{
		"/models":  {Destination: "/models", Type: "bind", Source: "/run/cradle/containers/c1/imagevols/0", Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}},
		"/etc/app": {Destination: "/etc/app", Type: "bind", Source: "/run/cradle/containers/c1/imagevols/1/etc/app", Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}},
	}
	for dst, w := range want {
		if diff := cmp.Diff(w, mountAt(t, s, dst)); diff != "" {
			t.Errorf("mount %s (-want +got):\n%s", dst, diff)
		}
	}
	// A read-only image volume asks nothing of the rootfs propagation.
	if p := s.Linux.RootfsPropagation; p != "" {
		t.Errorf("rootfs propagation = %q, want none", p)
	}
	if mountAt(t, s, "/data").Source != "/srv/data" {
		t.Error("host path mount next to image volumes changed")
	}
}

func TestImageMountErrors(t *testing.T) {
	cases := []struct {
		name   string
		mount  *runtimeapi.Mount
		kind   error
		substr string
	}{
		{"read-write", imageVol("/v", func(m *runtimeapi.Mount) { m.Readonly = false }), errdefs.ErrInvalidArgument, "must be readonly"},
		{"empty image", imageVol("/v", func(m *runtimeapi.Mount) { m.Image.Image = "" }), errdefs.ErrInvalidArgument, "names no image"},
		{"sub path without image", &runtimeapi.Mount{ContainerPath: "/v", Readonly: true, ImageSubPath: "etc"}, errdefs.ErrInvalidArgument, "names no image"},
		{"host path too", imageVol("/v", func(m *runtimeapi.Mount) { m.HostPath = "/srv" }), errdefs.ErrInvalidArgument, "exclusive"},
		{"bidirectional", imageVol("/v", func(m *runtimeapi.Mount) { m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL }), errdefs.ErrInvalidArgument, "propagate"},
		{"unknown propagation", imageVol("/v", func(m *runtimeapi.Mount) { m.Propagation = 7 }), errdefs.ErrInvalidArgument, "unknown mount propagation 7"},
		{"id-mapped", imageVol("/v", func(m *runtimeapi.Mount) { m.UidMappings = []*runtimeapi.IDMapping{{HostId: 1, Length: 1}} }), errdefs.ErrUnimplemented, "id-mapped"},
		{"absolute sub path", imageVol("/v", func(m *runtimeapi.Mount) { m.ImageSubPath = "/etc" }), errdefs.ErrInvalidArgument, "must be relative"},
		{"dot-dot sub path", imageVol("/v", func(m *runtimeapi.Mount) { m.ImageSubPath = "etc/../../x" }), errdefs.ErrInvalidArgument, "'..'"},
		{"NUL in sub path", imageVol("/v", func(m *runtimeapi.Mount) { m.ImageSubPath = "etc\x00" }), errdefs.ErrInvalidArgument, "NUL"},
		{"relative container path", imageVol("v"), errdefs.ErrInvalidArgument, "not absolute"},
		{"over the root", imageVol("/"), errdefs.ErrInvalidArgument, "root"},
		{"bad mount option", imageVol("/v", func(m *runtimeapi.Mount) { m.MountOptions = []string{"remount"} }), errdefs.ErrInvalidArgument, `mount option "remount"`},
		{"not prepared", imageVol("/elsewhere"), errdefs.ErrFailedPrecondition, "not prepared"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _ := testInput()
			in.Config.Mounts = []*runtimeapi.Mount{c.mount}
			in.ImageMounts = map[string]string{"/v": "/run/cradle/containers/c1/imagevols/0"}
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

func TestCleanImageSubPath(t *testing.T) {
	for in, want := range map[string]string{"": "", ".": "", "./": "", "etc": "etc", "etc/": "etc", "./usr//share/": "usr/share", "a..b/c": "a..b/c"} {
		got, err := CleanImageSubPath(in)
		if err != nil || got != want {
			t.Errorf("CleanImageSubPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"..", "../etc", "etc/..", "/", "/etc"} {
		if _, err := CleanImageSubPath(bad); err == nil {
			t.Errorf("CleanImageSubPath(%q) accepted", bad)
		}
	}
}

func TestIsImageMount(t *testing.T) {
	cases := map[*runtimeapi.Mount]bool{
		{ContainerPath: "/v", HostPath: "/srv"}:                      false,
		{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{}}:        true,
		{ContainerPath: "/v", ImageSubPath: "etc", HostPath: "/srv"}: true,
	}
	for m, want := range cases {
		if got := IsImageMount(m); got != want {
			t.Errorf("IsImageMount(%v) = %v", m, got)
		}
	}
}
