package sandbox

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// blockedInit is an init runner whose Stop hangs until release closes: a
// pod whose recovery cannot finish yet.
type blockedInit struct {
	*fakeInit
	release chan struct{}
}

func (b *blockedInit) Stop(ctx context.Context, handler, id string) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.fakeInit.Stop(ctx, handler, id)
}

// New serves at once, however long a pod's recovery takes: the pod is
// listed with its recorded state, operations on it wait for its recovery
// within their deadline and then fail with Unavailable (retryable), and
// once recovery ends they work.
func TestRecoveryDoesNotBlockServing(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	m := e.manager(t)
	cfg := sharedPIDPod("slow")
	id, err := m.Run(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	p := m.byID[id]
	p.mu.Lock()
	p.rec.State = NotReady // a Stop that a crash cut off: recovery finishes it
	err = m.save(p)
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	blocked := &blockedInit{fakeInit: f, release: make(chan struct{})}
	e.cfg.Init = blocked
	// New returning at all, while the init's Stop hangs, is the point.
	m2, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.List(Filter{}); len(got) != 1 || got[0].ID != id || got[0].State != NotReady {
		t.Fatalf("List during recovery = %+v, want the pod NOTREADY", got)
	}
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	wantKind(t, m2.Stop(short(), id), errdefs.ErrUnavailable)
	wantKind(t, m2.Remove(short(), id), errdefs.ErrUnavailable)
	_, err = m2.Run(short(), cfg, "")
	wantKind(t, err, errdefs.ErrUnavailable)

	close(blocked.release)
	m2.WaitRecovered()
	if err := m2.Stop(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := m2.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// A pod whose record is lost (or set aside as unreadable) still has its
// init: recovery stops it on whatever handler it runs, before unpinning
// the namespaces.
func TestOrphanPodDirStopsItsInit(t *testing.T) {
	e := newEnv(t, false)
	f := withInit(t, e)
	m := e.manager(t)
	id, err := m.Run(context.Background(), sharedPIDPod("lost"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.recordPath(id), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	m2 := e.manager(t)
	if got := m2.List(Filter{}); len(got) != 0 {
		t.Fatalf("pods after a torn record: %+v", got)
	}
	if !slices.Contains(f.stopped(), "orphan:"+id) {
		t.Errorf("the lost pod's init was not stopped: %v", f.stopped())
	}
	if _, err := os.Stat(m.recordPath(id) + ".corrupt"); err != nil {
		t.Errorf("torn record not set aside: %v", err)
	}
	os.Remove(m.recordPath(id) + ".corrupt")
	e.assertNoTrace(t)
}
