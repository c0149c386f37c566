package sandbox

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// fakeNRI records the hooks' calls; runErr fails RunPodSandbox, and
// duringRun runs inside it.
type fakeNRI struct {
	mu        sync.Mutex
	calls     []string
	runErr    error
	duringRun func(s Sandbox)
}

func (f *fakeNRI) add(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeNRI) RunPodSandbox(_ context.Context, s Sandbox) error {
	f.add("run " + s.Metadata().GetName())
	if f.duringRun != nil {
		f.duringRun(s)
	}
	return f.runErr
}
func (f *fakeNRI) StopPodSandbox(_ context.Context, s Sandbox) {
	f.add("stop " + s.Metadata().GetName())
}
func (f *fakeNRI) RemovePodSandbox(_ context.Context, s Sandbox) {
	f.add("remove " + s.Metadata().GetName())
}

func TestNRIHooks(t *testing.T) {
	e := newEnv(t, false)
	f := &fakeNRI{runErr: errdefs.FailedPrecondition("a plugin says no")}
	e.cfg.NRI = f
	m := e.manager(t)
	ctx := context.Background()
	// While the hook runs the pod is neither listed nor found.
	f.duringRun = func(s Sandbox) {
		if len(m.List(Filter{})) != 0 {
			t.Error("a pod is listed during its RunPodSandbox hook")
		}
		if _, err := m.Get(s.ID); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Get during the hook: %v", err)
		}
	}
	if _, err := m.Run(ctx, hostPod("refused"), ""); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Run refused by the hook: %v", err)
	}
	e.assertNoTrace(t)

	f.runErr = nil
	id, err := m.Run(ctx, hostPod("ok"), "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second stop tells nobody
		if err := m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	want := []string{"run refused", "run ok", "stop ok", "remove ok"}
	if !slices.Equal(f.calls, want) {
		t.Fatalf("hook calls %v, want %v", f.calls, want)
	}
}
