package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

func TestCreateRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	for name, tc := range map[string]struct {
		mutate func(*runtimeapi.ContainerConfig)
		pod    string
		kind   error
	}{
		"missing image": {mutate: func(c *runtimeapi.ContainerConfig) {
			c.Image.Image = e.reg.Ref("nothere:latest")
		}, kind: errdefs.ErrNotFound},
		"absolute log path": {mutate: func(c *runtimeapi.ContainerConfig) { c.LogPath = "/var/log/x.log" }, kind: errdefs.ErrInvalidArgument},
		"escaping log path": {mutate: func(c *runtimeapi.ContainerConfig) { c.LogPath = "../x.log" }, kind: errdefs.ErrInvalidArgument},
		"relative container path": {mutate: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "data", HostPath: host}}
		}, kind: errdefs.ErrInvalidArgument},
		// Found only by the spec builder, after the rootfs is mounted: the
		// undo path must leave nothing.
		"missing host path": {mutate: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: filepath.Join(host, "nope")}}
		}, kind: errdefs.ErrInvalidArgument},
		"unknown pod":     {pod: "nope", kind: errdefs.ErrNotFound},
		"missing name":    {mutate: func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }, kind: errdefs.ErrInvalidArgument},
		"nil config":      {mutate: nil, pod: "", kind: nil},
		"pod not ready":   {pod: "stopped", kind: errdefs.ErrFailedPrecondition},
		"image not given": {mutate: func(c *runtimeapi.ContainerConfig) { c.Image.Image = "" }, kind: errdefs.ErrInvalidArgument},
	} {
		if tc.kind == nil {
			if _, err := e.m.Create(ctxT(t), testPod, nil, e.pod); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("%s: %v, want InvalidArgument", name, err)
			}
			continue
		}
		e.pods.pods["stopped"] = SandboxInfo{ID: "stopped", Config: e.pod}
		cfg := e.ctrConfig("bad", "true")
		if tc.mutate != nil {
			tc.mutate(cfg)
		}
		pod := testPod
		if tc.pod != "" {
			pod = tc.pod
		}
		_, err := e.m.Create(ctxT(t), pod, cfg, e.pod)
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: %v, want kind %v", name, err, tc.kind)
		}
		if len(e.m.List(Filter{})) != 0 {
			t.Fatalf("%s: a container was kept", name)
		}
		e.assertClean()
		// The name was not kept either.
		id := e.create(e.ctrConfig("bad", "true"))
		if err := e.m.Remove(ctxT(t), id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIdenticalRetryGetsFirstResult(t *testing.T) {
	e := newEnv(t)
	cfg := e.ctrConfig("web", "sleep 1000")

	// The first create stalls in its last step; kubelet's retry arrives.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.m.hook = func(step string) error {
		if step == "oci" {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	var first string
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		first, firstErr = e.m.Create(firstCtx, testPod, cfg, e.pod)
	}()
	<-entered
	// kubelet gives up on the first call; the work goes on.
	cancelFirst()
	<-done
	if !errors.Is(firstErr, context.Canceled) {
		t.Errorf("cancelled first call: %v", firstErr)
	}
	retried := make(chan string)
	go func() {
		id, err := e.m.Create(ctxT(t), testPod, cfg, e.pod)
		if err != nil {
			t.Errorf("retry: %v", err)
		}
		retried <- id
	}()
	other := e.ctrConfig("web", "sleep 2000")
	if _, err := e.m.Create(ctxT(t), testPod, other, e.pod); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("different config while in flight: %v, want AlreadyExists", err)
	}
	close(release)
	id := <-retried
	e.m.hook = nil
	if _, err := e.m.Status(id); err != nil || first != "" {
		t.Fatalf("retry got %q (%v); first returned %q", id, err, first)
	}
	// Done: the same request gets the same container, another one a conflict.
	if again, err := e.m.Create(ctxT(t), testPod, cfg, e.pod); err != nil || again != id {
		t.Errorf("retry after done: %q %v, want %q", again, err, id)
	}
	if _, err := e.m.Create(ctxT(t), testPod, other, e.pod); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("different config: %v, want AlreadyExists", err)
	}
	if n := len(e.m.List(Filter{})); n != 1 {
		t.Errorf("%d containers, want 1", n)
	}
}

// An image with more layers than absolute lower dirs fit in one page of
// mount options still mounts.
func TestManyLayers(t *testing.T) {
	e := newEnv(t)
	var layers []v1.Layer
	for i := range 60 {
		layers = append(layers, testkit.MustLayer(t, []testkit.Entry{testkit.File(fmt.Sprintf("layer/%02d", i), fmt.Sprintf("L%d\n", i))}, testkit.Gzip))
	}
	bb, err := testkit.BusyboxLayer(testkit.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	img := testkit.MustImage(t, testkit.ImageConfig{Env: []string{"PATH=/bin"}}, append([]v1.Layer{bb}, layers...)...)
	e.reg.MustPush(t, "many:latest", img)
	ref := e.reg.Ref("many:latest")
	pulled, err := e.images.Pull(ctxT(t), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	abs := 0
	for _, l := range pulled.ChainIDs {
		abs += len(e.layers.DiffDir(l)) + 1
	}
	if abs < maxMountData {
		t.Fatalf("test image too small: %d bytes of absolute lower dirs", abs)
	}
	cfg := e.ctrConfig("many", "cat /layer/00 /layer/59")
	cfg.Image.Image = ref
	id := e.run(cfg)
	c := e.waitState(id, Exited)
	data, _ := os.ReadFile(c.LogPath)
	if c.ExitCode != 0 || !strings.Contains(string(data), "L0") || !strings.Contains(string(data), "L59") {
		t.Errorf("exit %d, log %q", c.ExitCode, data)
	}
}

// A failure inside runc (here: no such entrypoint) undoes the create.
func TestCreateRuntimeFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.ctrConfig("noexec", "")
	cfg.Command = []string{"/nonexistent"}
	if _, err := e.m.Create(ctxT(t), testPod, cfg, e.pod); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Fatalf("create with a missing entrypoint: %v", err)
	}
	if len(e.m.List(Filter{})) != 0 {
		t.Fatal("a container was kept")
	}
	e.assertClean()
}
