package container

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// A StopPodSandbox that comes while a create in the pod is in flight
// cancels that create and waits for it, so no container is left created in
// a stopped pod; later creates in the pod are refused.
func TestStopSandboxCancelsCreatesInFlight(t *testing.T) {
	e := newEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	e.m.hook = func(step string) error {
		if step == "oci" {
			once.Do(func() { close(entered) })
			<-release
		}
		return nil
	}
	created := make(chan error, 1)
	go func() {
		_, err := e.m.Create(ctxT(t), testPod, e.ctrConfig("late", "sleep 1000"), e.pod)
		created <- err
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- e.m.StopSandbox(context.Background(), testPod, 0) }()
	// The stop closes the pod's gate first: new creates are refused...
	eventually(t, 30*time.Second, "the pod's gate closed", func() bool {
		e.m.gates.mu.Lock()
		defer e.m.gates.mu.Unlock()
		g := e.m.gates.gates[testPod]
		return g != nil && g.closed
	})
	if _, err := e.m.Create(ctxT(t), testPod, e.ctrConfig("later", "sleep 1000"), e.pod); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("create in a stopping pod: %v, want FailedPrecondition", err)
	}
	// ...and waits for the one in flight.
	select {
	case err := <-stopped:
		t.Fatalf("StopSandbox returned (%v) while a create was in flight", err)
	default:
	}
	close(release)
	if err := <-created; err == nil {
		t.Error("the create in flight succeeded in a stopping pod")
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	e.m.hook = nil
	if cs := e.m.ForSandbox(testPod); len(cs) != 0 {
		t.Fatalf("containers left in the stopped pod: %+v", cs)
	}
	e.assertClean()

	// Once the pod is removed for good, its gate is forgotten.
	e.m.SandboxRemoved(testPod)
	e.m.gates.mu.Lock()
	n := len(e.m.gates.gates)
	e.m.gates.mu.Unlock()
	if n != 0 {
		t.Errorf("%d sandbox gates kept after removal", n)
	}
}

// Creates naming pods that do not exist leave no gate behind; a closed
// gate stays closed however its creates end.
func TestGatesDoNotOutliveTheirCreates(t *testing.T) {
	var g sandboxGates
	for i := range 1000 {
		_, leave, err := g.enter(string(rune('a' + i%26)))
		if err != nil {
			t.Fatal(err)
		}
		leave()
	}
	if n := len(g.gates); n != 0 {
		t.Fatalf("%d gates left by creates that have all left", n)
	}
	ctx, leave, err := g.enter("pod")
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		g.close("pod")
		close(closed)
	}()
	<-ctx.Done()
	leave()
	<-closed
	if _, _, err := g.enter("pod"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("a create after the stop: %v", err)
	}
	g.forget("pod")
	if n := len(g.gates); n != 0 {
		t.Fatalf("%d gates after forget", n)
	}
}
