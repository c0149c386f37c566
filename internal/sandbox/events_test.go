package sandbox

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/cradle-runtime/cradle/internal/events"
)

type recorder struct {
	mu  sync.Mutex
	got []heard
}

type heard struct {
	kind events.Kind
	sb   Sandbox
}

func (r *recorder) add(kind events.Kind, sb Sandbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, heard{kind, sb})
}

func (r *recorder) take() []heard {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

func kinds(hs []heard) []events.Kind {
	out := make([]events.Kind, len(hs))
	for i, h := range hs {
		out[i] = h.kind
	}
	return out
}

func TestEventsFollowThePodLifecycle(t *testing.T) {
	e := newEnv(t, false)
	rec := &recorder{}
	e.cfg.Events = rec.add
	m := e.manager(t)
	ctx := context.Background()

	id, err := m.Run(ctx, hostPod("ev"), "")
	if err != nil {
		t.Fatal(err)
	}
	hs := rec.take()
	if got, want := kinds(hs), []events.Kind{events.Created, events.Started}; !slices.Equal(got, want) {
		t.Fatalf("Run: heard %v, want %v", got, want)
	}
	for _, h := range hs {
		if h.sb.ID != id || h.sb.State != Ready || h.sb.Metadata().GetUid() != "uid-ev" {
			t.Errorf("Run: %v carries %s %s %v", h.kind, h.sb.ID, h.sb.State, h.sb.Metadata())
		}
	}

	// Stopped once, however often Stop is called.
	for range 2 {
		if err := m.Stop(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	hs = rec.take()
	if len(hs) != 1 || hs[0].kind != events.Stopped || hs[0].sb.State != NotReady {
		t.Fatalf("Stop twice: heard %v", kinds(hs))
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	hs = rec.take()
	if len(hs) != 1 || hs[0].kind != events.Deleted || hs[0].sb.ID != id {
		t.Fatalf("Remove: heard %v", kinds(hs))
	}
	if err := m.Remove(ctx, id); err != nil || len(rec.take()) != 0 {
		t.Errorf("second Remove: %v, or it was announced again", err)
	}

	// Removing a READY pod stops it first.
	id, err = m.Run(ctx, hostPod("ev2"), "")
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(rec.take()), []events.Kind{events.Stopped, events.Deleted}; !slices.Equal(got, want) {
		t.Errorf("Remove of a READY pod: heard %v, want %v", got, want)
	}

	// A failed Run is never announced.
	m.beforeStep = func(step string) error {
		if step == stepHosts {
			return errors.New("injected")
		}
		return nil
	}
	if _, err := m.Run(ctx, hostPod("ev3"), ""); err == nil {
		t.Fatal("Run with a failing step succeeded")
	}
	if hs := rec.take(); len(hs) != 0 {
		t.Errorf("failed Run: heard %v", kinds(hs))
	}
}
