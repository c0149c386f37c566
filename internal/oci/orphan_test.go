package oci

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scriptedRuntime is a Runtime whose binary answers `state` with the
// content of <dir>/state.json, "does not exist" when there is none, and
// hangs when <dir>/hang exists: a container's runtime view, set by the test.
func scriptedRuntime(t *testing.T) (*Runtime, string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "runtime")
	script := `#!/bin/sh
d=$(dirname "$0")
case " $* " in
*" state "*)
	if [ -e "$d/hang" ]; then exec sleep 3600; fi
	if [ -e "$d/state.json" ]; then cat "$d/state.json"; exit 0; fi
	echo 'container "x" does not exist' >&2; exit 1 ;;
esac
exit 0
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{RuntimePath: bin, RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func setState(t *testing.T, dir, status string, pid int) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"status": status, "pid": pid})
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitOrphan(t *testing.T, r *Runtime, id string) Exit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	exit, err := r.WaitExit(ctx, id)
	if err != nil {
		t.Fatalf("WaitExit of an unwatched container: %v (it must be judged, not waited on)", err)
	}
	return exit
}

// A container with state here but no conmon watching it (a crash before
// conmon's record, or conmon and the daemon both gone) must get an exit:
// WaitExit may never wait for an exit file nobody will write.
func TestWaitExitJudgesUnwatchedContainers(t *testing.T) {
	t.Run("no runtime state", func(t *testing.T) {
		r, _ := scriptedRuntime(t)
		os.Mkdir(r.ctrDir("c"), 0o700)
		exit := waitOrphan(t, r, "c")
		if exit.Code != unknownExitCode || !strings.Contains(exit.Message, "no state") {
			t.Errorf("exit = %+v, want %d naming the missing runtime state", exit, unknownExitCode)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		r, dir := scriptedRuntime(t)
		os.Mkdir(r.ctrDir("c"), 0o700)
		setState(t, dir, "stopped", 0)
		if exit := waitOrphan(t, r, "c"); exit.Code != unknownExitCode || exit.Message == "" {
			t.Errorf("exit = %+v, want %d with a message", exit, unknownExitCode)
		}
	})
	t.Run("running until killed", func(t *testing.T) {
		r, dir := scriptedRuntime(t)
		os.Mkdir(r.ctrDir("c"), 0o700)
		cmd := exec.Command("sleep", "3600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		setState(t, dir, "running", cmd.Process.Pid)
		done := make(chan Exit, 1)
		go func() { done <- waitOrphan(t, r, "c") }()
		// Until the process dies there is no exit to report.
		select {
		case exit := <-done:
			t.Fatalf("exit %+v reported while the process runs", exit)
		case <-time.After(200 * time.Millisecond):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		select {
		case exit := <-done:
			// Our child: its real status is reaped.
			if exit.Code != 137 {
				t.Errorf("exit = %+v, want 137", exit)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no exit after the process was killed")
		}
	})
	t.Run("runtime hangs, recorded pid gone", func(t *testing.T) {
		old := superviseTimeout
		superviseTimeout = 200 * time.Millisecond
		t.Cleanup(func() { superviseTimeout = old })
		r, dir := scriptedRuntime(t)
		os.Mkdir(r.ctrDir("c"), 0o700)
		os.WriteFile(filepath.Join(dir, "hang"), nil, 0o644)
		dead := exec.Command("true")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		if err := r.writeRecord("c", record{Pid: dead.Process.Pid}); err != nil {
			t.Fatal(err)
		}
		if exit := waitOrphan(t, r, "c"); exit.Code != unknownExitCode {
			t.Errorf("exit = %+v, want %d", exit, unknownExitCode)
		}
	})
	t.Run("conmon's own record wins", func(t *testing.T) {
		r, _ := scriptedRuntime(t)
		os.Mkdir(r.ctrDir("c"), 0o700)
		if err := writeFileAtomic(r.exitFile("c"), []byte("3")); err != nil {
			t.Fatal(err)
		}
		r.recordLost("c", unknownExitCode, "lost")
		if exit := waitOrphan(t, r, "c"); exit.Code != 3 {
			t.Errorf("exit = %+v, want conmon's 3", exit)
		}
	})
}
