package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
)

// A plugin that fails ADD after bridge and host-local did their part: the
// Run fails with the plugin's message and leaves nothing, and the name is
// free for the next attempt.
func TestCNIFailureLeavesNothing(t *testing.T) {
	e := newEnv(t, true)
	e.failingPlugin(t, "failer")
	e.writeConf(t, `{"type": "failer"}`)
	m := e.manager(t)
	ctx := context.Background()
	_, err := m.Run(ctx, podConfig("unlucky"), "")
	wantKind(t, err, errdefs.ErrUnavailable)
	if !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("error %q does not carry the plugin's message", err)
	}
	e.assertNoTrace(t)
	if l := m.List(Filter{}); len(l) != 0 {
		t.Fatalf("list: %v", l)
	}

	e.writeConf(t)
	id, err := m.Run(ctx, podConfig("unlucky"), "")
	if err != nil {
		t.Fatalf("run after the plugin was fixed: %v", err)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// A daemon that dies in the middle of Run (before any step, or after CNI
// ADD but before the pod is READY) leaves a half-made pod; the next New
// undoes it completely.
func TestCrashDuringRunIsUndone(t *testing.T) {
	e := newEnv(t, true)
	for _, step := range []string{stepNamespaces, stepHostname, stepResolv, stepShm, stepSysctls, stepNetwork, stepHosts, stepReady} {
		t.Run(step, func(t *testing.T) {
			m := e.manager(t)
			crashed := make(chan struct{})
			m.beforeStep = func(s string) error {
				if s == step {
					close(crashed)
					runtime.Goexit() // the process "dies": no undo runs
				}
				return nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() {
				cfg := podConfig("crashy")
				cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
				_, err := m.Run(ctx, cfg, "")
				done <- err
			}()
			<-crashed
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run of a crashed creation: %v", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(e.root, "pods")); len(entries) != 1 {
				t.Fatalf("the crash left %d records, want the one in progress", len(entries))
			}
			if step == stepHosts && len(e.leases(t)) == 0 {
				t.Fatal("test setup: a crash after CNI ADD should hold a lease")
			}

			m2 := e.manager(t)
			if l := m2.List(Filter{}); len(l) != 0 {
				t.Fatalf("recovered pods: %v", l)
			}
			e.assertNoTrace(t)
			// The name is free again.
			id, err := m2.Run(context.Background(), podConfig("crashy"), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.Remove(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A crash in Stop right after it recorded NOTREADY: New finishes the stop.
func TestCrashDuringStopIsFinished(t *testing.T) {
	e := newEnv(t, true)
	m := e.manager(t)
	id, err := m.Run(context.Background(), podConfig("halfstopped"), "")
	if err != nil {
		t.Fatal(err)
	}
	p := m.byID[id]
	p.mu.Lock()
	p.rec.State = NotReady
	err = m.save(p)
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	m2 := e.manager(t)
	s, err := m2.Get(id)
	if err != nil || s.State != NotReady {
		t.Fatalf("%+v %v", s, err)
	}
	if netns.Exists(s.NetNS) || len(e.leases(t)) != 0 {
		t.Fatal("recovery did not finish the stop")
	}
	if err := m2.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// Pod dirs and CNI attachments that no record names (a lost record) are
// torn down at start.
func TestOrphansAreSwept(t *testing.T) {
	e := newEnv(t, true)
	m := e.manager(t)
	id, err := m.Run(context.Background(), podConfig("orphan"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.root, "pods", id+".json")); err != nil {
		t.Fatal(err)
	}
	m2 := e.manager(t)
	if _, err := m2.Get(id); err == nil {
		t.Fatal("an orphan came back as a pod")
	}
	e.assertNoTrace(t)
}

// A record that cannot be read is moved aside, and the others still load.
func TestCorruptRecord(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	id, err := m.Run(context.Background(), hostPod("fine"), "")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(e.root, "pods", "deadbeef.json")
	os.WriteFile(bad, []byte("{not json"), 0o600)
	m2 := e.manager(t)
	if _, err := m2.Get(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bad + ".corrupt"); err != nil {
		t.Fatalf("corrupt record not moved aside: %v", err)
	}
}
