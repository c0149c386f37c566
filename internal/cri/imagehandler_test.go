package cri

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// An image request naming a handler cradle does not run is refused before
// the image store is touched (the server here has none).
func TestImageRPCsRefuseUnknownHandler(t *testing.T) {
	s := (&Server{}).WithRuntimeHandlers([]string{"runc", "kata"})
	bad := &runtimeapi.ImageSpec{Image: "busybox", RuntimeHandler: "gvisor"}
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"PullImage":   func() error { _, err := s.PullImage(ctx, &runtimeapi.PullImageRequest{Image: bad}); return err },
		"ImageStatus": func() error { _, err := s.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: bad}); return err },
		"RemoveImage": func() error { _, err := s.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: bad}); return err },
		"ListImages": func() error {
			_, err := s.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: bad}})
			return err
		},
	} {
		err := call()
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s with an unknown handler: err = %v, want InvalidArgument", name, err)
		}
	}
}

func TestWithHandlerEchoesTheRequestsHandler(t *testing.T) {
	img := &runtimeapi.Image{Id: "sha256:1", Spec: &runtimeapi.ImageSpec{Image: "sha256:1"}}
	if got := withHandler(img, &runtimeapi.ImageSpec{}).Spec.RuntimeHandler; got != "" {
		t.Errorf("no handler asked: spec.runtime_handler = %q", got)
	}
	if got := withHandler(img, &runtimeapi.ImageSpec{RuntimeHandler: "kata"}).Spec.RuntimeHandler; got != "kata" {
		t.Errorf("spec.runtime_handler = %q, want kata", got)
	}
}

// The container filesystem has the image filesystem's mountpoint unless
// <root>/containers is a filesystem of its own: kubelet reads a different
// mountpoint as a split disk.
func TestContainerFsMountpointSplitsOnlyOnAnotherFilesystem(t *testing.T) {
	root := t.TempDir()
	s := New(&config.Loaded{Config: config.Config{Root: root}}, nil, nil)
	if got := s.containerFsMountpoint(); got != root {
		t.Errorf("no containers dir: mountpoint %q, want %q", got, root)
	}
	dir := filepath.Join(root, "containers")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if got := s.containerFsMountpoint(); got != root {
		t.Errorf("containers dir on the root's filesystem: mountpoint %q, want %q", got, root)
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a filesystem needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	if got := s.containerFsMountpoint(); got != dir {
		t.Errorf("containers dir on its own filesystem: mountpoint %q, want %q", got, dir)
	}
}
