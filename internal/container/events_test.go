package container

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// recorder collects what the Events hook hears.
type recorder struct {
	mu  sync.Mutex
	got []heard
}

type heard struct {
	kind events.Kind
	c    Container
}

func (r *recorder) add(kind events.Kind, c Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, heard{kind, c})
}

// of returns what was heard about container id.
func (r *recorder) of(id string) []heard {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []heard
	for _, h := range r.got {
		if h.c.ID == id {
			out = append(out, h)
		}
	}
	return out
}

func kinds(hs []heard) []events.Kind {
	out := make([]events.Kind, len(hs))
	for i, h := range hs {
		out[i] = h.kind
	}
	return out
}

// waitHeard polls until n events about id were heard.
func (r *recorder) waitHeard(t *testing.T, id string, n int) []heard {
	t.Helper()
	var hs []heard
	eventually(t, 20*time.Second, fmt.Sprintf("%d events of %s", n, id), func() bool {
		hs = r.of(id)
		return len(hs) >= n
	})
	return hs
}

func TestEventsFollowTheLifecycle(t *testing.T) {
	e := newEnv(t)
	rec := &recorder{}
	e.m.cfg.Events = rec.add // before any container: nothing reads it yet

	// Exits by itself: created, started, stopped with its code, deleted.
	quits := e.run(e.ctrConfig("quits", "exit 3"))
	hs := rec.waitHeard(t, quits, 3)
	if want := []events.Kind{events.Created, events.Started, events.Stopped}; !slices.Equal(kinds(hs), want) {
		t.Fatalf("heard %v, want %v", kinds(hs), want)
	}
	if hs[0].c.State != Created || hs[1].c.State != Running {
		t.Errorf("created/started carry states %s, %s", hs[0].c.State, hs[1].c.State)
	}
	if st := hs[2].c; st.State != Exited || st.ExitCode != 3 || st.FinishedAt.IsZero() {
		t.Errorf("stopped carries %s, code %d, finished %v", st.State, st.ExitCode, st.FinishedAt)
	}
	if err := e.m.Remove(ctxT(t), quits); err != nil {
		t.Fatal(err)
	}
	if hs := rec.of(quits); len(hs) != 4 || hs[3].kind != events.Deleted {
		t.Errorf("after Remove heard %v, want a fourth, Deleted", kinds(hs))
	}

	// Stopped by Stop, once however often Stop is called; Remove of a
	// running container reports its stop before its deletion.
	stays := e.run(e.ctrConfig("stays", "trap 'exit 0' TERM; echo ready; sleep 1000 & wait"))
	e.waitLog(stays, "ready")
	if err := e.m.Stop(ctxT(t), stays, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Stop(ctxT(t), stays, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Remove(ctxT(t), stays); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(rec.of(stays)), []events.Kind{events.Created, events.Started, events.Stopped, events.Deleted}; !slices.Equal(got, want) {
		t.Errorf("heard %v, want %v", got, want)
	}
	killed := e.run(e.ctrConfig("killed", "sleep 1000"))
	if err := e.m.Remove(ctxT(t), killed); err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(rec.of(killed)), []events.Kind{events.Created, events.Started, events.Stopped, events.Deleted}; !slices.Equal(got, want) {
		t.Errorf("Remove of a running container: heard %v, want %v", got, want)
	}

	// A create that fails is never announced.
	cfg := e.ctrConfig("bad", "true")
	cfg.Image.Image = "absent:1"
	if _, err := e.m.Create(ctxT(t), testPod, cfg, e.pod); err == nil {
		t.Fatal("Create with an absent image succeeded")
	}
	rec.mu.Lock()
	n := len(rec.got)
	rec.mu.Unlock()
	if n != 12 {
		t.Errorf("heard %d events in all, want 12: a failed create must not be announced", n)
	}
}

// openWithEvents is env.open with an Events hook, so that what recovery
// finds is heard too.
func openWithEvents(e *env, fn EventFunc) {
	e.t.Helper()
	var err error
	if e.layers, err = layer.Open(filepath.Join(e.dir, "root", "layers")); err != nil {
		e.t.Fatal(err)
	}
	if e.images, err = image.New(image.Config{Dir: filepath.Join(e.dir, "root", "images")}, e.layers); err != nil {
		e.t.Fatal(err)
	}
	if e.rt, err = oci.New(oci.Config{
		Handler: "runc", RuntimePath: testRunc, ConmonPath: testConmon,
		RuntimeRoot: filepath.Join(e.dir, "runc"), StateDir: filepath.Join(e.dir, "o"),
	}); err != nil {
		e.t.Fatal(err)
	}
	cfg := e.config()
	cfg.Events = fn
	if e.m, err = New(cfg); err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.m.WaitRecovered()
}

func TestRecoveryReportsExitsAndRemovals(t *testing.T) {
	e := newEnv(t)
	stays := e.run(e.ctrConfig("stays", "echo ready; sleep 1000"))
	exits := e.run(e.ctrConfig("exits", "trap 'exit 5' USR1; echo ready; sleep 1000 & wait"))
	removing := e.run(e.ctrConfig("removing", "sleep 1000"))
	e.waitLog(stays, "ready")
	e.waitLog(exits, "ready")
	c, _ := e.m.get(removing)
	// A crash right after Remove recorded its intent.
	if err := e.m.update(c, func(r *record) { r.State = Removing }); err != nil {
		t.Fatal(err)
	}
	e.stop()

	rt, err := oci.New(oci.Config{Handler: "runc", RuntimePath: testRunc, ConmonPath: testConmon,
		RuntimeRoot: e.dir + "/runc", StateDir: e.dir + "/o"})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Kill(ctxT(t), exits, unix.SIGUSR1, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "exit while down", func() bool {
		_, exited, _ := rt.ExitStatus(exits)
		return exited
	})
	rt.Close()

	rec := &recorder{}
	openWithEvents(e, rec.add)
	// Heard during New, before it returned.
	if hs := rec.of(exits); len(hs) != 1 || hs[0].kind != events.Stopped || hs[0].c.ExitCode != 5 || hs[0].c.State != Exited {
		t.Errorf("exit while down: heard %v", hs)
	}
	if hs := rec.of(removing); len(hs) != 1 || hs[0].kind != events.Deleted {
		t.Errorf("interrupted remove: heard %v", kinds(hs))
	}
	if hs := rec.of(stays); len(hs) != 0 {
		t.Errorf("a container still running was announced: %v", kinds(hs))
	}
	// The re-armed watch reports a later exit too.
	if err := e.m.Stop(ctxT(t), stays, 0); err != nil {
		t.Fatal(err)
	}
	if hs := rec.of(stays); len(hs) != 1 || hs[0].kind != events.Stopped {
		t.Errorf("stop after restart: heard %v", kinds(hs))
	}
}
