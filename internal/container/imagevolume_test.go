package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

// pushVolumeImage pulls a two-layer data image: data/hello.txt in the
// first layer, data/second.txt in the second, and symlinks that try to
// leave the image. It returns the reference and the image's layers.
func (e *env) pushVolumeImage() (string, []digest.Digest) {
	t := e.t
	t.Helper()
	l1 := testkit.MustLayer(t, []testkit.Entry{
		testkit.Dir("data/"),
		testkit.File("data/hello.txt", "hello from the volume\n"),
		testkit.Symlink("data/inside", "hello.txt"),
		testkit.Symlink("data/root", "/"),
		testkit.Symlink("data/up", "../../../../../../.."),
	}, testkit.Gzip)
	l2 := testkit.MustLayer(t, []testkit.Entry{
		testkit.File("data/second.txt", "two\n"),
		testkit.Symlink("abs", "/data"),
	}, testkit.Gzip)
	e.reg.MustPush(t, "vol:1", testkit.MustImage(t, testkit.ImageConfig{}, l1, l2))
	ref := e.reg.Ref("vol:1")
	img, err := e.images.Pull(ctxT(t), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ref, img.ChainIDs
}

func imageVolMount(dst, ref, sub string) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: dst, Readonly: true, Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: sub}
}

// layersPresent says which of ids still have a directory in the store.
func (e *env) layersPresent(ids []digest.Digest) int {
	n := 0
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join(e.dir, "root", "layers", id.Encoded())); err == nil {
			n++
		}
	}
	return n
}

func TestImageVolumeReadOnlyWithSubPathsAndImageRef(t *testing.T) {
	e := newEnv(t)
	volRef, volLayers := e.pushVolumeImage()
	cfg := e.ctrConfig("vols", `cat /vol/data/hello.txt /sub/second.txt /file
test -x /bb/bin/busybox && echo busybox-ok
for f in /vol/new /sub/new /file /bb/new; do touch $f 2>/dev/null && echo "wrote $f"; done
echo ready; sleep 1000`)
	cfg.Mounts = []*runtimeapi.Mount{
		imageVolMount("/vol", volRef, ""),
		imageVolMount("/sub/", volRef, "./data/"),
		imageVolMount("/file", volRef, "data/inside"), // a symlink inside the image, to a file
		imageVolMount("/bb", e.imageRef, ""),          // a one-layer image
	}
	id := e.run(cfg)
	e.waitLog(id, "ready")
	c, err := e.m.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(c.LogPath)
	log := string(data)
	for _, want := range []string{"hello from the volume", "two", "busybox-ok"} {
		if !strings.Contains(log, want) {
			t.Errorf("container output lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "wrote") {
		t.Errorf("an image volume was writable:\n%s", log)
	}

	volImg, _, _ := e.images.Get(volRef)
	wantRefs := map[string]string{"/vol": volImg.ID.String(), "/sub/": volImg.ID.String(), "/file": volImg.ID.String(), "/bb": e.imageID}
	for _, m := range c.CRIStatus().GetMounts() {
		if got := m.GetImage().GetImageRef(); got != wantRefs[m.GetContainerPath()] {
			t.Errorf("status mount %s image_ref = %q, want %q", m.GetContainerPath(), got, wantRefs[m.GetContainerPath()])
		}
	}
	if cfg := c.Config.GetMounts()[0]; cfg.GetImage().GetImageRef() != "" {
		t.Error("status changed the shared config")
	}

	// A restart keeps the volumes and takes their layers again: removing
	// the image then leaves them to the container, as for its own image.
	e.restart()
	if mounted, _ := isMounted(e.m.volumeMount(id, 0)); !mounted {
		t.Error("image volume not mounted after restart")
	}
	if err := e.images.Remove(volRef); err != nil {
		t.Fatalf("RemoveImage while a volume uses it: %v", err)
	}
	if n := e.layersPresent(volLayers); n != len(volLayers) {
		t.Fatalf("%d of %d volume layers left while the container uses them", n, len(volLayers))
	}
	if out, err := e.m.ExecSync(ctxT(t), id, []string{"cat", "/sub/hello.txt"}, 0); err != nil || !strings.Contains(string(out.Stdout), "hello") {
		t.Errorf("volume after RemoveImage: %q %v", out.Stdout, err)
	}
	if err := e.m.Remove(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	if n := e.layersPresent(volLayers); n != 0 {
		t.Errorf("%d volume layers left after the last user went", n)
	}
	e.assertClean()
}

func TestImageVolumeFailuresLeaveNothing(t *testing.T) {
	e := newEnv(t)
	volRef, volLayers := e.pushVolumeImage()
	cases := []struct {
		name  string
		mount *runtimeapi.Mount
		kind  error
		msg   string
	}{
		{"image not pulled", imageVolMount("/v", e.reg.Ref("nope:1"), ""), errdefs.ErrNotFound, "pull it first"},
		{"read-write", &runtimeapi.Mount{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: volRef}}, errdefs.ErrInvalidArgument, "readonly"},
		{"missing sub path", imageVolMount("/v", volRef, "data/nope"), errdefs.ErrNotFound, "does not exist"},
		{"sub path under a file", imageVolMount("/v", volRef, "data/hello.txt/x"), errdefs.ErrNotFound, "does not exist"},
		{"dot-dot", imageVolMount("/v", volRef, "data/../../etc"), errdefs.ErrInvalidArgument, "'..'"},
		{"absolute sub path", imageVolMount("/v", volRef, "/etc"), errdefs.ErrInvalidArgument, "relative"},
		{"symlink to the root", imageVolMount("/v", volRef, "data/root/etc"), errdefs.ErrInvalidArgument, "leads out"},
		{"symlink climbing out", imageVolMount("/v", volRef, "data/up/etc"), errdefs.ErrInvalidArgument, "leads out"},
		// Absolute links are refused even when they would land inside:
		// inside the container they would point elsewhere.
		{"absolute symlink", imageVolMount("/v", volRef, "abs"), errdefs.ErrInvalidArgument, "leads out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := e.ctrConfig("bad", "true")
			cfg.Mounts = []*runtimeapi.Mount{imageVolMount("/ok", volRef, "data"), c.mount}
			_, err := e.m.Create(ctxT(t), testPod, cfg, e.pod)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Create: %v, want %v with %q", err, c.kind, c.msg)
			}
			e.assertClean()
		})
	}
	// No failure kept a reference on the volume's layers.
	if err := e.images.Remove(volRef); err != nil {
		t.Fatal(err)
	}
	if n := e.layersPresent(volLayers); n != 0 {
		t.Errorf("%d volume layers leaked by failed creates", n)
	}
}

func TestCrashWithImageVolumeMountedIsUndoneAtRestart(t *testing.T) {
	e := newEnv(t)
	for _, step := range []string{"imagevolumes", "spec", "oci"} {
		volRef, volLayers := e.pushVolumeImage()
		e.m.hook = func(s string) error {
			if s == step {
				return errCrash
			}
			return nil
		}
		cfg := e.ctrConfig("crash", "sleep 1000")
		cfg.Mounts = []*runtimeapi.Mount{imageVolMount("/v", volRef, "data")}
		if _, err := e.m.Create(ctxT(t), testPod, cfg, e.pod); !errors.Is(err, errCrash) {
			t.Fatalf("%s: Create: %v", step, err)
		}
		e.restart()
		if n := len(e.m.List(Filter{})); n != 0 {
			t.Errorf("%s: %d containers after restart", step, n)
		}
		e.assertClean()
		if err := e.images.Remove(volRef); err != nil {
			t.Fatal(err)
		}
		if n := e.layersPresent(volLayers); n != 0 {
			t.Errorf("%s: %d volume layers leaked", step, n)
		}
	}
}
