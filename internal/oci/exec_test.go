package oci

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestExecSync(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)

	res, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"sh", "-c", "echo out; echo err >&2; echo $FOO; exit 7"}})
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	if string(res.Stdout) != "out\nfrom-spec\n" || string(res.Stderr) != "err\n" || res.ExitCode != 7 {
		t.Errorf("ExecSync = stdout %q, stderr %q, code %d; want the container's env and exit 7", res.Stdout, res.Stderr, res.ExitCode)
	}
	// An explicit process template replaces the container's.
	res, err = e.rt.ExecSync(ctx, c.id, ExecOpts{
		Cmd:     []string{"sh", "-c", "echo $FOO; pwd"},
		Process: &specs.Process{Env: []string{"PATH=/bin", "FOO=override"}, Cwd: "/tmp"},
	})
	if err != nil || string(res.Stdout) != "override\n/tmp\n" || res.ExitCode != 0 {
		t.Errorf("ExecSync with a template = %q, %d, %v", res.Stdout, res.ExitCode, err)
	}
	// A command that does not exist is the runtime's error, not exit output.
	if _, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"/no/such/binary"}}); err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Errorf("ExecSync of a missing binary: %v", err)
	}
	for name, o := range map[string]ExecOpts{
		"empty command":    {},
		"negative timeout": {Cmd: []string{"true"}, Timeout: -1},
		"negative limit":   {Cmd: []string{"true"}, MaxOutput: -1},
	} {
		if _, err := e.rt.ExecSync(ctx, c.id, o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := e.rt.ExecSync(ctx, "nope", ExecOpts{Cmd: []string{"true"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ExecSync in an unknown container: %v, want ErrNotFound", err)
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.WaitExit(ctx, c.id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"true"}}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("ExecSync in a stopped container: %v, want ErrFailedPrecondition", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.cfg.StateDir, "ctr", c.id)); hasExecDir(ents) {
		t.Errorf("ExecSync left its scratch directory behind")
	}
}

func hasExecDir(ents []os.DirEntry) bool {
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "exec-") {
			return true
		}
	}
	return false
}

func TestExecSyncTimeoutKillsTree(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)

	start := time.Now()
	res, err := e.rt.ExecSync(ctx, c.id, ExecOpts{
		Cmd:     []string{"sh", "-c", "echo started; sleep 60 & sleep 61; echo not-reached"},
		Timeout: 500 * time.Millisecond,
	})
	elapsed := time.Since(start)
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("ExecSync past its timeout: %v, want ErrDeadlineExceeded", err)
	}
	if string(res.Stdout) != "started\n" {
		t.Errorf("output before the timeout = %q, want it kept", res.Stdout)
	}
	// Killed processes close the pipes at once: no drain wait.
	if elapsed > execDrainTimeout {
		t.Errorf("timed-out ExecSync returned after %s", elapsed)
	}
	// Neither sleep survives: in the container's cgroup only init is alive
	// (the killed ones may linger as zombies of the container's init).
	procs := filepath.Join(cgroupRoot, "pids", testCgroupParent, c.id, "cgroup.procs")
	eventually(t, 5*time.Second, "exec'd processes to die", func() bool {
		data, err := os.ReadFile(procs)
		if err != nil {
			t.Fatal(err)
		}
		alive := 0
		for _, f := range strings.Fields(string(data)) {
			pid, _ := strconv.Atoi(f)
			if st, err := readProcStat(pid); err == nil && st.state != 'Z' {
				alive++
			}
		}
		return alive == 1
	})
	// The container is unharmed.
	if res, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"echo", "ok"}}); err != nil || string(res.Stdout) != "ok\n" {
		t.Errorf("ExecSync after a timeout = %q, %v", res.Stdout, err)
	}
}

func TestExecSyncCapsOutput(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)

	const limit = 1 << 20
	res, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"sh", "-c", "yes | head -c 3000000; yes e | head -c 3000000 >&2"}, MaxOutput: limit})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("ExecSync = %d, %v", res.ExitCode, err)
	}
	if len(res.Stdout) != limit || !res.StdoutTruncated || !bytes.Equal(res.Stdout[:4], []byte("y\ny\n")) {
		t.Errorf("stdout: %d bytes, truncated %v; want %d bytes of yes", len(res.Stdout), res.StdoutTruncated, limit)
	}
	if len(res.Stderr) != limit || !res.StderrTruncated || !bytes.Equal(res.Stderr[:4], []byte("e\ne\n")) {
		t.Errorf("stderr: %d bytes, truncated %v; want %d bytes", len(res.Stderr), res.StderrTruncated, limit)
	}

	// The default cap is 16 MiB; exactly that much is not truncated.
	res, err = e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"sh", "-c", "yes | head -c 17000000; yes | head -c 16777216 >&2"}})
	if err != nil || len(res.Stdout) != DefaultMaxExecOutput || !res.StdoutTruncated ||
		len(res.Stderr) != DefaultMaxExecOutput || res.StderrTruncated {
		t.Errorf("default cap: stdout %d (truncated %v), stderr %d (truncated %v), %v",
			len(res.Stdout), res.StdoutTruncated, len(res.Stderr), res.StderrTruncated, err)
	}

	// An endless flood is capped and then stopped by the timeout.
	res, err = e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"yes"}, MaxOutput: limit, Timeout: time.Second})
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) || len(res.Stdout) != limit || !res.StdoutTruncated {
		t.Errorf("endless flood: %d bytes, truncated %v, %v", len(res.Stdout), res.StdoutTruncated, err)
	}
}

func TestReopenLog(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sh", "-c", "i=0; while true; do echo line$i; i=$((i+1)); sleep 0.02; done"})
	e.run(c)
	eventually(t, 10*time.Second, "first log lines", func() bool { return len(readLog(t, c.logPath)) > 0 })

	rotated := c.logPath + ".1"
	if err := os.Rename(c.logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.ReopenLog(ctx, c.id); err != nil {
		t.Fatalf("ReopenLog: %v", err)
	}
	eventually(t, 10*time.Second, "lines in the new log file", func() bool { return len(readLog(t, c.logPath)) > 0 })
	oldLines := readLog(t, rotated)
	newLines := readLog(t, c.logPath)
	eventually(t, 10*time.Second, "more lines in the new log file", func() bool { return len(readLog(t, c.logPath)) >= len(newLines)+3 })
	if got := readLog(t, rotated); len(got) != len(oldLines) {
		t.Errorf("rotated file still written: %d lines, then %d", len(oldLines), len(got))
	}
	// Nothing lost at the switch: the numbering continues.
	last := oldLines[len(oldLines)-1].text
	first := readLog(t, c.logPath)[0].text
	if n, _ := strconv.Atoi(strings.TrimPrefix(last, "line")); "line"+strconv.Itoa(n+1) != first {
		t.Errorf("old file ends with %q, new one starts with %q", last, first)
	}

	if err := e.rt.ReopenLog(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReopenLog of an unknown container: %v, want ErrNotFound", err)
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.WaitExit(ctx, c.id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "conmon to exit", func() bool {
		pid, _ := e.rt.MonitorPid(c.id)
		return pid == 0
	})
	if err := e.rt.ReopenLog(ctx, c.id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("ReopenLog without conmon: %v, want ErrFailedPrecondition", err)
	}
}
