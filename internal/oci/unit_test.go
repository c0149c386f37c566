package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "abc-DEF_1.2+3", strings.Repeat("f", 64)} {
		if err := validID(id); err != nil {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "a:b", "é", strings.Repeat("f", maxIDLen+1)} {
		if err := validID(id); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("validID(%q) = %v, want ErrInvalidArgument", id, err)
		}
	}
}

func TestRuntimeMessageAndClassify(t *testing.T) {
	for _, tc := range []struct {
		stderr, msg string
		kind        error
	}{
		{`time="2026-01-01T00:00:00Z" level=error msg="container does not exist"`, "container does not exist", errdefs.ErrNotFound},
		{"time=\"x\" level=warning msg=\"some warning\"\ntime=\"x\" level=error msg=\"container not running\"\n", "container not running", errdefs.ErrFailedPrecondition},
		{`time="x" level=error msg="cannot delete container c that is not stopped: running"`, "cannot delete container c that is not stopped: running", errdefs.ErrFailedPrecondition},
		{`time="x" level=error msg="runc create failed: container with given ID already exists"`, "runc create failed: container with given ID already exists", errdefs.ErrAlreadyExists},
		{`time="x" level=error msg="quoted \"name\" here"`, `quoted "name" here`, errKindUnknown},
		{"crun: container `x` does not exist\n", "crun: container `x` does not exist", errKindUnknown},
		{"container `x` does not exist", "container `x` does not exist", errdefs.ErrNotFound},
		{`time="x" level=error msg="exec: \"/bin/x\": stat /bin/x: no such file or directory"`, `exec: "/bin/x": stat /bin/x: no such file or directory`, errKindUnknown},
		// gVisor's runsc, for a container or sandbox it has no state for.
		{"loading container: file does not exist\n", "loading container: file does not exist", errdefs.ErrNotFound},
		{"loading container: open /run/x/runsc/p_sandbox:c.state: no such file or directory", "loading container: open /run/x/runsc/p_sandbox:c.state: no such file or directory", errdefs.ErrNotFound},
		{"creating container: cannot load sandbox: open /x.state: no such file or directory", "creating container: cannot load sandbox: open /x.state: no such file or directory", errKindUnknown},
		{"cannot signal container \"x\" in state created", "cannot signal container \"x\" in state created", errdefs.ErrFailedPrecondition},
		{"", "", errKindUnknown},
	} {
		msg := runtimeMessage(tc.stderr)
		if msg != tc.msg {
			t.Errorf("runtimeMessage(%q) = %q, want %q", tc.stderr, msg, tc.msg)
		}
		if kind := classify(msg); kind != tc.kind {
			t.Errorf("classify(%q) = %v, want %v", msg, kind, tc.kind)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat("4242 (we (ird) name) Z 17 4242 4242 0 -1 4194304")
	if err != nil || st.comm != "we (ird) name" || st.state != 'Z' || st.ppid != 17 || st.pgrp != 4242 {
		t.Errorf("parseProcStat = %+v, %v", st, err)
	}
	for _, bad := range []string{"", "1 comm S 1 1", "1 (c) S x 1", "1 (c) S"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
	if st, err := readProcStat(os.Getpid()); err != nil || st.ppid != os.Getppid() {
		t.Errorf("readProcStat(self) = %+v, %v", st, err)
	}
}

func TestConmonArgs(t *testing.T) {
	r := &Runtime{cfg: Config{RuntimePath: "/usr/sbin/runc", RuntimeRoot: "/run/r", StateDir: "/run/s"}}
	base := CreateOpts{ID: "c1", Bundle: "/b", LogPath: "/l/0.log"}
	args := r.conmonArgs(base)
	for _, want := range [][]string{
		{"--api-version"}, {"-c", "c1"}, {"-u", "c1"}, {"-r", "/usr/sbin/runc"}, {"-b", "/b"},
		{"--runtime-arg", "--root=/run/r"}, {"-l", "k8s-file:/l/0.log"}, {"--exit-dir", "/run/s/exits"},
		{"--socket-dir-path", "/run/s/attach"}, {"-P", "/run/s/ctr/c1/conmon.pid"}, {"-p", "/run/s/ctr/c1/pid"},
		{"--persist-dir", "/run/s/ctr/c1"},
	} {
		if !containsSeq(args, want) {
			t.Errorf("conmon args %q lack %q", args, want)
		}
	}
	for _, absent := range []string{"--terminal", "--stdin", "--leave-stdin-open", "--systemd-cgroup", "--log-size-max", "--sync"} {
		if slices.Contains(args, absent) {
			t.Errorf("default conmon args contain %s", absent)
		}
	}
	for _, tc := range []struct {
		opts    func(*CreateOpts)
		systemd bool
		want    []string
		not     []string
	}{
		{func(o *CreateOpts) { o.Terminal = true; o.Stdin = true }, false, []string{"--terminal"}, []string{"--stdin"}},
		{func(o *CreateOpts) { o.Stdin = true }, false, []string{"--stdin", "--leave-stdin-open"}, nil},
		{func(o *CreateOpts) { o.Stdin, o.StdinOnce = true, true }, false, []string{"--stdin"}, []string{"--leave-stdin-open"}},
		{func(o *CreateOpts) { o.LogSizeMax = 1024 }, false, []string{"--log-size-max", "1024"}, nil},
		{func(*CreateOpts) {}, true, []string{"--systemd-cgroup"}, nil},
	} {
		o := base
		tc.opts(&o)
		r.cfg.SystemdCgroup = tc.systemd
		args := r.conmonArgs(o)
		if !containsSeq(args, tc.want) {
			t.Errorf("%+v: args %q lack %q", o, args, tc.want)
		}
		for _, n := range tc.not {
			if slices.Contains(args, n) {
				t.Errorf("%+v: args %q contain %s", o, args, n)
			}
		}
	}
}

func containsSeq(args, seq []string) bool {
	for i := 0; i+len(seq) <= len(args); i++ {
		if slices.Equal(args[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

func TestNewValidation(t *testing.T) {
	dir := t.TempDir()
	good := Config{RuntimePath: "/bin/true", RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"}
	for name, mod := range map[string]func(*Config){
		"relative runtime": func(c *Config) { c.RuntimePath = "runc" },
		"empty root":       func(c *Config) { c.RuntimeRoot = "" },
		"relative state":   func(c *Config) { c.StateDir = "state" },
	} {
		c := good
		mod(&c)
		if _, err := New(c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: New = %v, want ErrInvalidArgument", name, err)
		}
	}
	c := good
	c.ConmonPath = filepath.Join(dir, "missing")
	if _, err := New(c); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("missing conmon: New = %v, want ErrFailedPrecondition", err)
	}
	r, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.cfg.Handler != "true" {
		t.Errorf("default handler name = %q", r.cfg.Handler)
	}
}

// fakeRuntime is a Runtime whose binaries never run: enough for exit files.
func fakeRuntime(t *testing.T) *Runtime {
	t.Helper()
	dir := t.TempDir()
	r, err := New(Config{RuntimePath: "/bin/true", RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// monitored gives id a state dir and a stand-in for a live conmon, whose
// exit file the test then writes: nothing is adopted.
func monitored(t *testing.T, r *Runtime, id string) {
	t.Helper()
	if err := os.Mkdir(r.ctrDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.monitors[id] = &monitor{id: id, deleted: make(chan struct{})}
	r.mu.Unlock()
}

func TestWaitExitManyWaiters(t *testing.T) {
	r := fakeRuntime(t)
	const n = 200
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("w%d", i)
		monitored(t, r, ids[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, id := range ids {
		wg.Go(func() {
			exit, err := r.WaitExit(ctx, id)
			if err == nil && (exit.Code != i%256 || exit.FinishedAt.IsZero()) {
				err = fmt.Errorf("%s: exit %+v, want code %d", id, exit, i%256)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	for i, id := range ids {
		data := []byte(strconv.Itoa(i % 256))
		if i%2 == 0 {
			err := writeFileAtomic(r.exitFile(id), data) // like conmon: temp file + rename
			if err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(r.exitFile(id), data, 0o644); err != nil { // in place
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExitStatusFiles(t *testing.T) {
	r := fakeRuntime(t)
	if _, _, err := r.ExitStatus("unknown"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ExitStatus of an unknown container: %v", err)
	}
	if _, err := r.WaitExit(context.Background(), "unknown"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("WaitExit of an unknown container: %v", err)
	}
	if _, _, err := r.ExitStatus("../x"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ExitStatus with a bad id: %v", err)
	}
	monitored(t, r, "c")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.WaitExit(ctx, "c"); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("WaitExit past its deadline: %v, want ErrDeadlineExceeded", err)
	}
	// Created, not yet written: no exit yet, and no error.
	os.WriteFile(r.exitFile("c"), nil, 0o644)
	if _, ok, err := r.ExitStatus("c"); ok || err != nil {
		t.Errorf("empty exit file: exited %v, %v; want not yet", ok, err)
	}
	os.WriteFile(r.exitFile("c"), []byte("garbage"), 0o644)
	if _, _, err := r.ExitStatus("c"); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("corrupt exit file: %v, want ErrDataLoss", err)
	}
	os.WriteFile(r.exitFile("c"), []byte("137"), 0o644)
	os.WriteFile(filepath.Join(r.ctrDir("c"), "oom"), nil, 0o644)
	if exit, ok, err := r.ExitStatus("c"); !ok || err != nil || exit.Code != 137 || !exit.OOMKilled {
		t.Errorf("ExitStatus = %+v, %v, %v; want 137 OOMKilled", exit, ok, err)
	}
}

func TestWaitExitEndsOnClose(t *testing.T) {
	r := fakeRuntime(t)
	monitored(t, r, "c")
	done := make(chan error, 1)
	go func() {
		_, err := r.WaitExit(context.Background(), "c")
		done <- err
	}()
	// Close must end the waiter whether it has subscribed yet or not.
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("WaitExit after Close: %v, want ErrUnavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitExit did not return after Close")
	}
}

func TestPidWatchReapsOnlyItsProcess(t *testing.T) {
	// A process of our own: the watch reaps it and reads its status.
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 5"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile an exec.Cmd child exits too: its status must stay its own.
	other := startChild(t, "/bin/sh", "-c", "exit 9")
	w, err := watchPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	<-w.done
	if code, ok := w.exitStatus(); !ok || code != 5 || !w.exitedProcess() {
		t.Errorf("watched child: code %d, reaped %v; want 5", code, ok)
	}
	var exitErr *exec.ExitError
	if err := other.Wait(); !errors.As(err, &exitErr) || exitErr.ExitCode() != 9 {
		t.Errorf("exec.Cmd child: %v, want its own exit status 9", err)
	}

	// A signal through the pidfd, reported as 128+signal.
	pid, err = syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	w2, err := watchPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.close()
	if w2.exitedProcess() {
		t.Fatal("sleep reported exited at once")
	}
	if err := w2.signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w2.done
	if code, ok := w2.exitStatus(); !ok || code != 137 {
		t.Errorf("killed child: code %d, reaped %v; want 137", code, ok)
	}
	if err := w2.signal(unix.SIGKILL); err != nil {
		t.Errorf("signal to an exited process: %v", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
		t.Error("reaped child still in /proc")
	}
}

func TestPidWatchCloseLeavesProcess(t *testing.T) {
	cmd := startChild(t, "/bin/sleep", "60")
	w, err := watchPid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	w.close()
	if w.exitedProcess() {
		t.Error("closed watch reports the process exited")
	}
	cmd.Process.Kill()
	var exitErr *exec.ExitError
	if err := cmd.Wait(); !errors.As(err, &exitErr) {
		t.Errorf("exec.Cmd Wait after a closed watch: %v", err)
	}
	if _, err := watchPid(cmd.Process.Pid); err == nil {
		t.Error("watchPid of a reaped pid succeeded")
	}
}

func TestKillProcessTree(t *testing.T) {
	// sh with two background sleeps, in its own session like an exec'd
	// process; the sleeps must die with it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "sleep 60 & sleep 60 & echo ready; wait"},
		&syscall.ProcAttr{Files: []uintptr{0, w.Fd(), 2}, Sys: &syscall.SysProcAttr{Setsid: true}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	root, err := watchPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer root.close()
	if _, err := r.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	kids := descendants(pid)[1:]
	if len(kids) != 2 {
		t.Fatalf("descendants = %v, want the two sleeps", kids)
	}
	killed := killProcessTree(root)
	if len(killed) != 2 {
		t.Errorf("killProcessTree watches %d processes, want the two sleeps", len(killed))
	}
	<-root.done
	if code, ok := root.exitStatus(); !ok || code != 137 {
		t.Errorf("sh: code %d, reaped %v; want killed (137)", code, ok)
	}
	// The sleeps were re-parented to us (subreaper) or to init; reapKilled
	// collects ours.
	reapKilled(killed, 10*time.Second)
	for _, pid := range kids {
		if st, err := readProcStat(pid); err == nil && (st.state != 'Z' || st.ppid == os.Getpid()) {
			t.Errorf("sleep %d: state %c, parent %d after the kill", pid, st.state, st.ppid)
		}
	}
}

func TestCaptureCaps(t *testing.T) {
	c, err := newCapture(10)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.start()
	go func() {
		c.w.Write([]byte(strings.Repeat("x", 100000)))
		c.w.Close()
	}()
	buf, truncated := c.finish()
	if string(buf) != "xxxxxxxxxx" || !truncated {
		t.Errorf("capture = %q, %v", buf, truncated)
	}
}
