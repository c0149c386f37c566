package container

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/oci"
)

func TestRestartFindsRunningAndExited(t *testing.T) {
	e := newEnv(t)
	running := e.run(e.ctrConfig("stays", "trap 'exit 0' TERM; echo ready; sleep 1000 & wait"))
	exits := e.run(e.ctrConfig("exits", "trap 'exit 5' USR1; echo ready; sleep 1000 & wait"))
	created := e.create(e.ctrConfig("created", "echo late"))
	e.waitLog(running, "ready")
	e.waitLog(exits, "ready")

	rootfs := e.m.rootfs(running)
	e.stop()
	// While the daemon is down, the running container's rootfs mount goes
	// (the container keeps its own view) and another container exits.
	if err := unmountRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
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
	e.open()
	// running, exits and created were reconciled; nothing failed.
	if got := e.obs.get("recovered container ok"); got != 3 {
		t.Errorf("containers recovered ok = %d, want 3 (failed: %d)", got, e.obs.get("recovered container failed"))
	}

	c, err := e.m.Status(exits)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Exited || c.ExitCode != 5 || c.Reason != ReasonError || c.FinishedAt.IsZero() {
		t.Errorf("exited while down: %s %d %q finished %v", c.State, c.ExitCode, c.Reason, c.FinishedAt)
	}
	if c, _ := e.m.Status(running); c.State != Running {
		t.Errorf("running container is %s after restart", c.State)
	}
	// Mounted again, from layers that Prune at boot left in place.
	if mounted, err := isMounted(e.m.rootfs(running)); err != nil || !mounted {
		t.Errorf("rootfs of running container not mounted after restart: %v", err)
	}
	// The exit watch is armed again: Stop returns on the exit, well
	// before its timeout.
	start := time.Now()
	if err := e.m.Stop(ctxT(t), running, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.m.Status(running); c.State != Exited || c.ExitCode != 0 || c.Reason != ReasonCompleted || time.Since(start) > 20*time.Second {
		t.Errorf("stop after restart: %s %d %q after %s", c.State, c.ExitCode, c.Reason, time.Since(start))
	}
	// A created container can still be started, and its name still taken.
	if err := e.m.Start(ctxT(t), created); err != nil {
		t.Fatal(err)
	}
	e.waitState(created, Exited)
	if _, err := e.m.Create(ctxT(t), testPod, e.ctrConfig("created", "echo other"), e.pod); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("name after restart: %v, want AlreadyExists", err)
	}
	again, err := e.m.Create(ctxT(t), testPod, e.ctrConfig("created", "echo late"), e.pod)
	if err != nil || again != created {
		t.Errorf("identical retry after restart: %q %v, want %q", again, err, created)
	}
}

func TestCrashMidCreateIsUndoneAtRestart(t *testing.T) {
	e := newEnv(t)
	for _, step := range []string{"layers", "rootfs", "spec", "bundle", "oci", "record"} {
		e.m.hook = func(s string) error {
			if s == step {
				return errCrash
			}
			return nil
		}
		if _, err := e.m.Create(ctxT(t), testPod, e.ctrConfig("crash", "sleep 1000"), e.pod); !errors.Is(err, errCrash) {
			t.Fatalf("%s: Create: %v", step, err)
		}
		ents, _ := os.ReadDir(recordRoot(e.m.cfg.Root))
		if len(ents) != 1 {
			t.Fatalf("%s: the simulated crash left %d records, want the one to undo", step, len(ents))
		}
		e.restart()
		if n := len(e.m.List(Filter{})); n != 0 {
			t.Errorf("%s: %d containers after restart", step, n)
		}
		e.assertClean()
		// The layers were not leaked: removing the image frees them.
		if err := e.images.Remove(e.imageRef); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(e.dir + "/root/layers"); len(ents) > 1 { // tmp/ only
			t.Errorf("%s: layers left after image removal: %v", step, ents)
		}
		if _, err := e.images.Pull(ctxT(t), e.imageRef, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoveInterruptedIsFinishedAtRestart(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.ctrConfig("half", "sleep 1000"))
	e.waitState(id, Running)
	c, _ := e.m.get(id)
	// A crash right after Remove recorded its intent.
	if err := e.m.update(c, func(r *record) { r.State = Removing }); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if _, err := e.m.Status(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Status: %v, want NotFound", err)
	}
	e.assertClean()
}
