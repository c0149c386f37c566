package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// fakeInit stands in for the OCI runtime: it records what it was asked.
type fakeInit struct {
	mu        sync.Mutex
	specs     map[string]*specs.Spec
	bundles   map[string]string
	stops     []string
	failStart error
	// handlers is the handler each init was started on; a Stop on another
	// one is noted in stopHandlerMismatch.
	handlers            map[string]string
	stopHandlerMismatch []string
	// sandboxed names the handlers that run a pod in one sandbox.
	sandboxed map[string]bool
}

func (f *fakeInit) Sandboxed(handler string) bool { return f.sandboxed[handler] }

func (f *fakeInit) Start(ctx context.Context, handler, id, bundle string, s *specs.Spec) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.specs[id], f.bundles[id] = s, bundle
	if f.handlers == nil {
		f.handlers = map[string]string{}
	}
	f.handlers[id] = handler
	if f.failStart != nil {
		return 0, f.failStart
	}
	return 4242, nil
}

func (f *fakeInit) Stop(ctx context.Context, handler, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := f.handlers[id]; want != handler {
		f.stopHandlerMismatch = append(f.stopHandlerMismatch, id+": started on "+want+", stopped on "+handler)
	}
	f.stops = append(f.stops, id)
	return nil
}

func (f *fakeInit) StopOrphan(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops = append(f.stops, "orphan:"+id)
	return nil
}

func (f *fakeInit) stopped() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stops)
}

func withInit(t *testing.T, e *env) *fakeInit {
	t.Helper()
	if _, err := os.Stat(spec.DefaultInitPath); err != nil {
		t.Skip("catatonit not installed")
	}
	facts, err := spec.DetectHostFacts()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeInit{specs: map[string]*specs.Spec{}, bundles: map[string]string{}}
	e.cfg.Init, e.cfg.Node = f, &spec.Node{Host: facts}
	return f
}

func sharedPIDPod(name string) *runtimeapi.PodSandboxConfig {
	c := hostPod(name)
	c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return c
}

func TestSharedPIDPodRunsInit(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, sharedPIDPod("shared"), "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	if s.PIDNS != "/proc/4242/ns/pid" {
		t.Fatalf("PIDNS = %q", s.PIDNS)
	}
	sp, bundle := f.specs[id], f.bundles[id]
	if sp == nil || sp.Process.Args[0] != "/catatonit" || sp.Root.Path != filepath.Join(bundle, "rootfs") {
		t.Fatalf("init spec %+v in %s", sp, bundle)
	}
	var onDisk specs.Spec
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(bundle, "config.json"))), &onDisk); err != nil || onDisk.Process.Args[0] != "/catatonit" {
		t.Fatalf("config.json: %v %+v", err, onDisk.Process)
	}
	// A pod without a shared PID namespace gets no init.
	other, err := m.Run(ctx, hostPod("plain"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.specs[other]; ok {
		t.Fatal("init started for a pod that does not share its PID namespace")
	}

	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.stopped(); len(got) != 1 || got[0] != id {
		t.Fatalf("init stops = %v, want one for %s", got, id)
	}
	if s, _ := m.Get(other); s.PIDNS != "" {
		t.Fatalf("plain pod PIDNS = %q", s.PIDNS)
	}
}

func TestInitStartFailureIsUndone(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	f.failStart = errdefs.Unavailable("runc says no")
	m := e.manager(t)
	_, err := m.Run(context.Background(), sharedPIDPod("nope"), "")
	wantKind(t, err, errdefs.ErrUnavailable)
	if len(f.stopped()) != 1 {
		t.Fatalf("a failed start was not cleaned up: stops %v", f.stopped())
	}
	e.assertNoTrace(t)
}

func TestCrashAfterInitStartIsUndone(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	m := e.manager(t)
	crashed := make(chan struct{})
	m.beforeStep = func(s string) error {
		if s == stepReady {
			close(crashed)
			runtime.Goexit()
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := m.Run(ctx, sharedPIDPod("crash"), ""); done <- err }()
	<-crashed
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(f.stopped()) != 0 {
		t.Fatal("test setup: no stop should have happened yet")
	}
	e.manager(t)
	if len(f.stopped()) != 1 {
		t.Fatalf("recovery did not stop the init: %v", f.stopped())
	}
	e.assertNoTrace(t)
}

func TestInitNeedsNode(t *testing.T) {
	e := newEnv(t, false)
	e.cfg.Init = &fakeInit{}
	_, err := New(context.Background(), e.cfg)
	wantKind(t, err, errdefs.ErrInvalidArgument)
}

// The init runs on the pod's own RuntimeClass handler, where its
// containers run, and is stopped there.
func TestInitRunsOnThePodsHandler(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, sharedPIDPod("kata"), "kata")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	got := f.handlers[id]
	f.mu.Unlock()
	if got != "kata" {
		t.Fatalf("init started on handler %q, want the pod's %q", got, "kata")
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stops) != 1 || len(f.stopHandlerMismatch) != 0 {
		t.Fatalf("stops %v, handler mismatches %v", f.stops, f.stopHandlerMismatch)
	}
}

// A sandboxed handler's pod gets its sandbox container (the init) whatever
// its PID mode; the record keeps that, so a restarted daemon sees the same
// pod; containers of a pod sharing PID name the namespace inside the
// sandbox, never a host path.
func TestSandboxedHandlerRunsSandboxContainer(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	f.sandboxed = map[string]bool{"gvisor": true}
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, hostPod("sbx"), "gvisor")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	if !s.Sandboxed || s.PIDNS != "" {
		t.Fatalf("sandboxed pod: Sandboxed=%v PIDNS=%q", s.Sandboxed, s.PIDNS)
	}
	sp := f.specs[id]
	if sp == nil || sp.Annotations[spec.AnnotationContainerType] != spec.ContainerTypeSandbox || f.handlers[id] != "gvisor" {
		t.Fatalf("sandbox container spec %+v on %q", sp, f.handlers[id])
	}
	shared, err := m.Run(ctx, sharedPIDPod("sbx-shared"), "gvisor")
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := m.Get(shared)
	if !s2.Sandboxed || s2.PIDNS == "" || strings.HasPrefix(s2.PIDNS, "/proc/") {
		t.Fatalf("sandboxed shared-PID pod: PIDNS = %q", s2.PIDNS)
	}
	// runc pods keep no pause.
	plain, err := m.Run(ctx, hostPod("plain"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.specs[plain]; ok {
		t.Fatal("a pod on a handler that is not sandboxed got a sandbox container")
	}
	// The record says so: a daemon that no longer has the handler still
	// stops the sandbox container.
	m2 := e.manager(t)
	s3, err := m2.Get(id)
	if err != nil || !s3.Sandboxed {
		t.Fatalf("after restart: %+v %v", s3, err)
	}
	if err := m2.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.stopped(), id) {
		t.Fatalf("sandbox container not stopped: %v", f.stopped())
	}
}
