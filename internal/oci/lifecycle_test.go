package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestLifecycleLogsAndExit(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 600"})

	pid, err := e.rt.Create(ctx, c.opts())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	st, err := e.rt.State(ctx, c.id)
	if err != nil || st.Status != StatusCreated || st.Pid != pid {
		t.Fatalf("State after create = %+v, %v; want created with pid %d", st, err, pid)
	}
	if _, ok, err := e.rt.ExitStatus(c.id); ok || err != nil {
		t.Fatalf("ExitStatus of a created container = %v, %v; want not exited", ok, err)
	}
	monitorPid, err := e.rt.MonitorPid(c.id)
	if err != nil || !e.rt.isConmonOf(monitorPid, c.id) {
		t.Fatalf("MonitorPid = %d, %v; want this container's conmon", monitorPid, err)
	}
	// conmon runs with the daemon's oom_score_adj: never asked for another.
	if got, want := readTrim(t, "/proc/"+itoa(monitorPid)+"/oom_score_adj"), readTrim(t, "/proc/self/oom_score_adj"); got != want {
		t.Errorf("conmon oom_score_adj = %s, want the daemon's %s", got, want)
	}
	if ids, err := e.rt.List(); err != nil || len(ids) != 1 || ids[0] != c.id {
		t.Errorf("List = %v, %v; want [%s]", ids, err, c.id)
	}

	if err := e.rt.Start(ctx, c.id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != StatusRunning || st.Pid != pid {
		t.Fatalf("State after start = %+v, %v; want running with pid %d", st, err, pid)
	}
	eventually(t, 10*time.Second, "both lines in the CRI log", func() bool {
		lines := readLog(t, c.logPath)
		return hasLine(lines, "stdout", "to-stdout") && hasLine(lines, "stderr", "to-stderr")
	})
	for _, l := range readLog(t, c.logPath) {
		if l.tag != "F" || time.Since(l.time) > time.Minute || time.Until(l.time) > time.Minute {
			t.Errorf("log line %+v: want a full line stamped now", l)
		}
	}

	before := time.Now()
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	exit, err := e.rt.WaitExit(ctx, c.id)
	if err != nil {
		t.Fatalf("WaitExit: %v", err)
	}
	if exit.Code != 137 || exit.OOMKilled || exit.Message != "" {
		t.Errorf("exit = %+v, want code 137", exit)
	}
	if exit.FinishedAt.Before(before.Add(-time.Second)) || exit.FinishedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("FinishedAt %v not between %v and now", exit.FinishedAt, before)
	}
	if again, ok, err := e.rt.ExitStatus(c.id); !ok || err != nil || again != exit {
		t.Errorf("ExitStatus = %+v, %v, %v; want %+v", again, ok, err, exit)
	}
	if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != StatusStopped {
		t.Errorf("State after exit = %+v, %v; want stopped", st, err)
	}
	eventually(t, 10*time.Second, "conmon to exit and be reaped", func() bool {
		_, err := os.Stat("/proc/" + itoa(monitorPid))
		return err != nil
	})

	if err := e.rt.Delete(ctx, c.id, false); err != nil {
		t.Fatalf("Delete of a stopped container: %v", err)
	}
	if _, err := e.rt.State(ctx, c.id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("State after delete: %v, want ErrNotFound", err)
	}
	if _, _, err := e.rt.ExitStatus(c.id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ExitStatus after delete: %v, want ErrNotFound", err)
	}
	for _, p := range []string{
		filepath.Join(e.cfg.StateDir, "ctr", c.id), filepath.Join(e.cfg.StateDir, "exits", c.id),
		filepath.Join(e.cfg.StateDir, "attach", c.id), filepath.Join(c.bundle, "ctl"), filepath.Join(c.bundle, "winsz"),
	} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind by Delete", p)
		}
	}
	for _, d := range cgroupDirs(filepath.Join(testCgroupParent, c.id)) {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left behind by Delete", d)
		}
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		script string
		code   int
	}{{"true", 0}, {"exit 3", 3}, {"echo bye; exit 42", 42}} {
		c := e.newContainer([]string{"sh", "-c", tc.script})
		e.run(c)
		exit, err := e.rt.WaitExit(ctx, c.id)
		if err != nil {
			t.Fatalf("%q: WaitExit: %v", tc.script, err)
		}
		if exit.Code != tc.code || exit.FinishedAt.IsZero() {
			t.Errorf("%q: exit = %+v, want code %d and a finish time", tc.script, exit, tc.code)
		}
	}
}

func TestExitRecordedWhileDaemonDown(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	down := e.newContainer([]string{"sleep", "600"})
	later := e.newContainer([]string{"sleep", "600"})
	downPid := e.run(down)
	e.run(later)
	downMonitor, _ := e.rt.MonitorPid(down.id)
	laterMonitor, _ := e.rt.MonitorPid(later.id)

	// The daemon goes away; conmon stays.
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	if !e.rt.isConmonOf(laterMonitor, later.id) {
		t.Fatal("conmon did not outlive the Runtime")
	}
	// One container exits while nobody watches.
	if err := syscall.Kill(downPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "conmon to record the exit", func() bool {
		st, err := readProcStat(downMonitor)
		return err != nil || st.state == 'Z'
	})

	e.rt = e.open() // the restarted daemon
	exit, ok, err := e.rt.ExitStatus(down.id)
	if err != nil || !ok || exit.Code != 137 || exit.FinishedAt.IsZero() {
		t.Fatalf("ExitStatus after restart = %+v, %v, %v; want 137", exit, ok, err)
	}
	if pid, err := e.rt.MonitorPid(later.id); err != nil || pid != laterMonitor {
		t.Errorf("MonitorPid after restart = %d, %v; want %d", pid, err, laterMonitor)
	}
	// The other one exits after the restart and is seen by the new watcher.
	if err := e.rt.Kill(ctx, later.id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if exit, err := e.rt.WaitExit(ctx, later.id); err != nil || exit.Code != 137 {
		t.Fatalf("WaitExit after restart = %+v, %v; want 137", exit, err)
	}
}

func TestMonitorKilledContainerAdopted(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)
	monitorPid, _ := e.rt.MonitorPid(c.id)
	if err := syscall.Kill(monitorPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	exit, err := e.rt.WaitExit(ctx, c.id)
	if err != nil {
		t.Fatalf("WaitExit: %v", err)
	}
	// The daemon, as subreaper, inherited and reaped the container's init.
	if exit.Code != 137 || !strings.Contains(exit.Message, "conmon") {
		t.Errorf("exit = %+v, want code 137 and a message about the lost monitor", exit)
	}
}

func TestOOMKilled(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	limit := int64(16 << 20)
	c := e.newContainer([]string{"sh", "-c", "x=$(yes | head -c 200000000); echo survived"}, func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit, Swap: &limit}}
	})
	e.run(c)
	exit, err := e.rt.WaitExit(ctx, c.id)
	if err != nil {
		t.Fatalf("WaitExit: %v", err)
	}
	if exit.Code != 137 || !exit.OOMKilled {
		t.Errorf("exit = %+v, want 137 and OOMKilled", exit)
	}
}

func TestKillAndDeleteIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	if err := e.rt.Kill(ctx, "never-created", syscall.SIGKILL, false); err != nil {
		t.Errorf("Kill of an unknown container: %v", err)
	}
	if err := e.rt.Delete(ctx, "never-created", false); err != nil {
		t.Errorf("Delete of an unknown container: %v", err)
	}
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)
	if err := e.rt.Delete(ctx, c.id, false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Delete of a running container without force: %v, want ErrFailedPrecondition", err)
	}
	if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != StatusRunning {
		t.Fatalf("refused Delete changed the container: %+v, %v", st, err)
	}
	if err := e.rt.Start(ctx, c.id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Start of a running container: %v, want ErrFailedPrecondition", err)
	}
	for range 2 {
		if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, true); err != nil {
			t.Errorf("Kill: %v", err)
		}
	}
	if _, err := e.rt.WaitExit(ctx, c.id); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Errorf("Kill of a stopped container: %v", err)
	}
	if err := e.rt.Start(ctx, c.id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Start of a stopped container: %v, want ErrFailedPrecondition", err)
	}
	for range 2 {
		if err := e.rt.Delete(ctx, c.id, false); err != nil {
			t.Errorf("Delete: %v", err)
		}
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Errorf("Kill of a deleted container: %v", err)
	}
	if err := e.rt.Kill(ctx, c.id, 0, false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Kill with signal 0: %v, want ErrInvalidArgument", err)
	}
}

func TestForceDeleteRunning(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)
	monitorPid, _ := e.rt.MonitorPid(c.id)
	if err := e.rt.Delete(ctx, c.id, true); err != nil {
		t.Fatalf("Delete --force: %v", err)
	}
	// Delete waited for conmon: it is gone, not a zombie.
	if _, err := os.Stat("/proc/" + itoa(monitorPid)); err == nil {
		t.Errorf("conmon %d still exists after Delete", monitorPid)
	}
	if ids, _ := e.rt.List(); len(ids) != 0 {
		t.Errorf("List after Delete = %v", ids)
	}
}

func TestCreateRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	for name, mod := range map[string]func(*CreateOpts){
		"bad id":             func(o *CreateOpts) { o.ID = "../x" },
		"relative bundle":    func(o *CreateOpts) { o.Bundle = "bundle" },
		"bundle w/o config":  func(o *CreateOpts) { o.Bundle = e.dir },
		"relative log":       func(o *CreateOpts) { o.LogPath = "x.log" },
		"colon in log path":  func(o *CreateOpts) { o.LogPath = filepath.Join(e.dir, "a:b.log") },
		"missing log dir":    func(o *CreateOpts) { o.LogPath = filepath.Join(e.dir, "nope", "x.log") },
		"negative log limit": func(o *CreateOpts) { o.LogSizeMax = -1 },
	} {
		o := c.opts()
		mod(&o)
		if _, err := e.rt.Create(ctx, o); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Create = %v, want ErrInvalidArgument", name, err)
		}
	}

	e.run(c)
	if _, err := e.rt.Create(ctx, c.opts()); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second Create: %v, want ErrAlreadyExists", err)
	}
	// The refused create did not touch the first one's conmon files.
	os.Rename(c.logPath, c.logPath+".1")
	if err := e.rt.ReopenLog(ctx, c.id); err != nil {
		t.Errorf("ReopenLog of the first container after a refused duplicate: %v", err)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"/no/such/binary"})
	pid, err := e.rt.Create(ctx, c.opts())
	if err == nil {
		// Some runtimes only find out at start.
		err = e.rt.Start(ctx, c.id)
		if err == nil {
			t.Fatalf("Create and Start of a missing binary succeeded (pid %d)", pid)
		}
		return
	}
	if !strings.Contains(err.Error(), "/no/such/binary") {
		t.Errorf("Create error %q does not carry the runtime's message", err)
	}
	if ids, _ := e.rt.List(); len(ids) != 0 {
		t.Errorf("failed Create left state for %v", ids)
	}
	if _, err := e.rt.State(ctx, c.id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("failed Create left a runtime container: %v", err)
	}
	for _, p := range []string{filepath.Join(e.cfg.StateDir, "attach", c.id), filepath.Join(c.bundle, "ctl")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind by a failed Create", p)
		}
	}
	// The id is free again.
	c.spec.Process.Args = []string{"true"}
	data, _ := json.Marshal(c.spec)
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.Create(ctx, c.opts()); err != nil {
		t.Errorf("Create after a failed Create of the same id: %v", err)
	}
}

func TestPlaceMonitor(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	o := c.opts()
	var placed int
	o.PlaceMonitor = func(pid int) error {
		// conmon is still blocked on the start pipe: it has no child yet.
		if kids := descendants(pid); len(kids) != 1 {
			t.Errorf("conmon %d already has children %v when placed", pid, kids[1:])
		}
		placed = pid
		return nil
	}
	if _, err := e.rt.Create(ctx, o); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if placed == 0 {
		t.Fatal("PlaceMonitor not called")
	}

	bad := e.newContainer([]string{"sleep", "600"})
	o = bad.opts()
	o.PlaceMonitor = func(int) error { return errors.New("no cgroup for you") }
	if _, err := e.rt.Create(ctx, o); err == nil || !strings.Contains(err.Error(), "no cgroup for you") {
		t.Errorf("Create with a failing PlaceMonitor: %v", err)
	}
	if ids, _ := e.rt.List(); len(ids) != 1 {
		t.Errorf("List after a failed placement = %v, want only %s", ids, c.id)
	}
}

func TestTerminal(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sh", "-c", "test -t 1 && echo on-a-tty; exec sleep 600"}, func(s *specs.Spec) {
		s.Process.Terminal = true
	})
	e.run(c)
	eventually(t, 10*time.Second, "terminal output in the log", func() bool {
		for _, l := range readLog(t, c.logPath) {
			if l.stream == "stdout" && strings.TrimRight(l.text, "\r") == "on-a-tty" {
				return true
			}
		}
		return false
	})
	if err := e.rt.ResizeTerminal(c.id, 100, 40); err != nil {
		t.Errorf("ResizeTerminal: %v", err)
	}
	res, err := e.rt.ExecSync(ctx, c.id, ExecOpts{Cmd: []string{"sh", "-c", "test -t 1 || echo no-tty"}})
	if err != nil || string(res.Stdout) != "no-tty\n" {
		t.Errorf("ExecSync in a terminal container = %q, %v; want a pipe, not the tty", res.Stdout, err)
	}
}

func TestUpdateResources(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)
	shares := uint64(512)
	mem := int64(64 << 20)
	if err := e.rt.UpdateResources(ctx, c.id, &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: &shares},
		Memory: &specs.LinuxMemory{Limit: &mem},
	}); err != nil {
		t.Fatalf("UpdateResources: %v", err)
	}
	cg := filepath.Join(testCgroupParent, c.id)
	if got := readTrim(t, filepath.Join(cgroupRoot, "cpu", cg, "cpu.shares")); got != "512" {
		t.Errorf("cpu.shares = %s, want 512", got)
	}
	if got := readTrim(t, filepath.Join(cgroupRoot, "memory", cg, "memory.limit_in_bytes")); got != itoa(int(mem)) {
		t.Errorf("memory.limit_in_bytes = %s, want %d", got, mem)
	}
	if err := e.rt.UpdateResources(ctx, c.id, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("UpdateResources(nil): %v, want ErrInvalidArgument", err)
	}
	if err := e.rt.UpdateResources(ctx, "nope", &specs.LinuxResources{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("UpdateResources of an unknown container: %v, want ErrNotFound", err)
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCreateTimeoutLeavesNothing(t *testing.T) {
	e := newEnv(t)
	// A createRuntime hook that hangs makes `runc create` hang.
	c := e.newContainer([]string{"sleep", "600"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "31.4159"}}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := e.rt.Create(ctx, c.opts()); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("Create with a hanging runtime: %v, want ErrDeadlineExceeded", err)
	}
	if ids, _ := e.rt.List(); len(ids) != 0 {
		t.Errorf("timed-out Create left state for %v", ids)
	}
	// conmon, runc create, runc init and the hook are dead and reaped (the
	// cleanup checks for zombies), and the cgroup runc made is gone.
	if procs := processesMentioning("31.4159"); len(procs) != 0 {
		t.Errorf("hook of the timed-out create still runs: %q", procs)
	}
	if z := zombieChildren(); len(z) != 0 {
		t.Errorf("timed-out Create left zombies %v", z)
	}
}

// conmon's --log-size-max does not rotate: past the limit it starts the file
// over, dropping what was there. Kept for operators who want a hard cap.
func TestLogSizeMaxTruncates(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done"})
	o := c.opts()
	o.LogSizeMax = 4096
	if _, err := e.rt.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.Start(ctx, c.id); err != nil {
		t.Fatal(err)
	}
	if exit, err := e.rt.WaitExit(ctx, c.id); err != nil || exit.Code != 0 {
		t.Fatalf("WaitExit = %+v, %v", exit, err)
	}
	fi, err := os.Stat(c.logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLog(t, c.logPath)
	if fi.Size() > 4096 || len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1].text, "line-199-") ||
		strings.HasPrefix(lines[0].text, "line-0-") {
		t.Errorf("log of %d bytes, %d lines: want at most 4096 bytes ending with line 199", fi.Size(), len(lines))
	}
}

// conmon died while the daemon was down, and its pid now belongs to another
// process: the restarted Runtime must not take that process for conmon, and
// must adopt the container.
func TestRecoverAfterMonitorLost(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	c := e.newContainer([]string{"sleep", "600"})
	e.run(c)
	monitorPid, _ := e.rt.MonitorPid(c.id)
	if err := e.rt.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := watchPid(monitorPid)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w.done // reaped, as init would have
	w.close()
	stranger := startChild(t, "/bin/sleep", "600")
	rec, err := e.rt.readRecord(c.id)
	if err != nil {
		t.Fatal(err)
	}
	rec.MonitorPid = stranger.Process.Pid
	if err := e.rt.writeRecord(c.id, rec); err != nil {
		t.Fatal(err)
	}

	e.rt = e.open()
	if pid, err := e.rt.MonitorPid(c.id); err != nil || pid != 0 {
		t.Errorf("MonitorPid = %d, %v; the stranger is no conmon", pid, err)
	}
	if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	exit, err := e.rt.WaitExit(ctx, c.id)
	if err != nil || exit.Code != 137 || exit.Message == "" {
		t.Errorf("WaitExit = %+v, %v; want 137 recorded by the adopting Runtime", exit, err)
	}
	// The stranger was neither signalled nor reaped by us.
	stranger.Process.Signal(syscall.SIGTERM)
	var exitErr *exec.ExitError
	if err := stranger.Wait(); !errors.As(err, &exitErr) || exitErr.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("stranger: %v, want its own SIGTERM status", err)
	}
}
