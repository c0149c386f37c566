package oci

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// DefaultMaxExecOutput caps what ExecSync keeps of each output stream. The
// rest is read and dropped, so a flooding command cannot exhaust the
// daemon's memory (CVE-2022-1708) nor block on a full pipe.
const DefaultMaxExecOutput = 16 << 20

const (
	// execDrainTimeout is how long ExecSync keeps reading output after the
	// command exited, for data still in flight. A background process that
	// inherited the pipes would otherwise hold ExecSync forever.
	execDrainTimeout = 2 * time.Second
	// execKillGrace is how long runc gets to reap the killed process and exit
	// before it is killed itself.
	execKillGrace = 5 * time.Second
)

// ExecOpts describes one command to run in a running container.
type ExecOpts struct {
	Cmd []string
	// Process is the template for user, env, cwd, capabilities and the like;
	// nil uses the container's own process from its bundle's config.json.
	// Args and Terminal are always replaced.
	Process *specs.Process
	// Timeout kills the command and its children; 0 leaves only ctx.
	Timeout time.Duration
	// MaxOutput caps each of stdout and stderr; 0 means DefaultMaxExecOutput.
	MaxOutput int
}

// ExecResult is what the command printed and how it ended.
type ExecResult struct {
	Stdout, Stderr                   []byte
	StdoutTruncated, StderrTruncated bool
	ExitCode                         int // 128+signal when killed
}

// ExecSync runs a command in the container with `runc exec` in the
// foreground and waits for it. When the timeout passes (or ctx ends) the
// command and all its descendants are killed, runc reaps them, and the error
// is of kind ErrDeadlineExceeded; the result holds the output so far.
func (r *Runtime) ExecSync(ctx context.Context, id string, o ExecOpts) (ExecResult, error) {
	if err := validID(id); err != nil {
		return ExecResult{}, err
	}
	if len(o.Cmd) == 0 || o.Cmd[0] == "" {
		return ExecResult{}, errdefs.InvalidArgument("exec in %s: empty command", id)
	}
	if o.Timeout < 0 || o.MaxOutput < 0 {
		return ExecResult{}, errdefs.InvalidArgument("exec in %s: negative timeout or output limit", id)
	}
	if o.MaxOutput == 0 {
		o.MaxOutput = DefaultMaxExecOutput
	}
	proc, err := r.execProcess(id, o)
	if err != nil {
		return ExecResult{}, err
	}
	dir, err := os.MkdirTemp(r.ctrDir(id), "exec-")
	if errors.Is(err, fs.ErrNotExist) {
		return ExecResult{}, errdefs.NotFound("container %s: no state in %s", id, r.cfg.Handler)
	}
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer os.RemoveAll(dir)
	procPath, pidPath, logPath := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid"), filepath.Join(dir, "runc.log")
	data, err := json.Marshal(proc)
	if err != nil {
		return ExecResult{}, errdefs.InvalidArgument("exec in %s: %v", id, err)
	}
	if err := os.WriteFile(procPath, data, 0o600); err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}

	// The runtime's own errors go to the --log file, so they are never
	// confused with the command's stderr.
	args := append(r.globalArgs(), "--log", logPath, "--log-format", "json",
		"exec", "--pid-file", pidPath, "--process", procPath, id)
	cmd := exec.Command(r.cfg.RuntimePath, args...)
	stdout, err := newCapture(o.MaxOutput)
	if err != nil {
		return ExecResult{}, err
	}
	defer stdout.close()
	stderr, err := newCapture(o.MaxOutput)
	if err != nil {
		return ExecResult{}, err
	}
	defer stderr.close()
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	err = cmd.Start()
	stdout.w.Close()
	stderr.w.Close()
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	stdout.start()
	stderr.start()

	// Wait's error only repeats the exit status, read from ProcessState below.
	runcDone := make(chan struct{})
	go func() { _ = cmd.Wait(); close(runcDone) }()
	crashpoint.Hit(crashpoint.ExecRunning)
	// The timeout is the command's, as kubelet's probes mean it: it starts
	// once the runtime has started the process (it writes the pid file
	// then), so a runtime slow to start on a loaded node does not fail a
	// probe whose command is quick. The start itself is bounded by ctx.
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		wait := o.Timeout
		bound := time.NewTimer(execStartTimeout)
		select {
		case <-waitForFile(pidPath, runcDone):
		case <-runcDone:
		case <-ctx.Done():
		case <-bound.C:
			wait = 0 // a runtime that cannot start it: time is up
		}
		bound.Stop()
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	var stopErr error
	select {
	case <-runcDone:
	case <-timeout:
		stopErr = errdefs.New(errdefs.ErrDeadlineExceeded, "exec in %s: command %q timed out after %s", id, o.Cmd, o.Timeout)
		r.stopExec(cmd, pidPath, runcDone)
	case <-ctx.Done():
		stopErr = errdefs.WithKind(kindOfContext(ctx.Err()), fmt.Errorf("exec in %s: %w", id, ctx.Err()))
		r.stopExec(cmd, pidPath, runcDone)
	}

	res := ExecResult{ExitCode: -1}
	res.Stdout, res.StdoutTruncated = stdout.finish()
	res.Stderr, res.StderrTruncated = stderr.finish()
	if stopErr != nil {
		return res, stopErr
	}
	if msg := runtimeLogError(logPath); msg != "" {
		return res, errdefs.WithKind(classify(msg), fmt.Errorf("exec in %s: %s", id, msg))
	}
	if cmd.ProcessState == nil {
		return res, fmt.Errorf("exec in %s: lost the runtime's exit status", id)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			res.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			res.ExitCode = 128 + int(ws.Signal())
		}
	}
	return res, nil
}

// execProcess builds the process.json of an exec.
func (r *Runtime) execProcess(id string, o ExecOpts) (*specs.Process, error) {
	base := o.Process
	if base == nil {
		rec, err := r.readRecord(id)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
		if err != nil {
			return nil, errdefs.FailedPrecondition("exec in %s: read bundle: %v", id, err)
		}
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil || spec.Process == nil {
			return nil, errdefs.FailedPrecondition("exec in %s: bundle config.json has no usable process", id)
		}
		base = spec.Process
	}
	p := *base
	p.Args = append([]string(nil), o.Cmd...)
	p.Terminal = false
	p.ConsoleSize = nil
	return &p, nil
}

// stopExec kills the exec'd process tree and waits for runc to reap it and
// exit. If runc does not, it is killed too, and the exec'd process, now
// re-parented to the daemon, is reaped by its watch.
func (r *Runtime) stopExec(cmd *exec.Cmd, pidPath string, runcDone <-chan struct{}) {
	var watches []*pidWatch
	if pid, err := waitPidFile(pidPath, runcDone); err == nil {
		// The pidfd pins the process; its parent being this runc proves it
		// is the exec'd process and not a stranger that reused the pid.
		if w, err := watchPid(pid); err == nil {
			watches = append(watches, w)
			if st, err := readProcStat(pid); err == nil && st.ppid == cmd.Process.Pid {
				watches = append(watches, killProcessTree(w)...)
			}
		}
	}
	defer func() { go reapKilled(watches, time.Minute) }()
	select {
	case <-runcDone:
		return
	case <-time.After(execKillGrace):
	}
	r.log.Warn("runtime exec did not exit after its process was killed; killing it", "pid", cmd.Process.Pid)
	_ = cmd.Process.Kill()
	<-runcDone
}

// waitPidFile returns the exec'd pid once runc has written it; runc may
// still be setting the process up when the timeout hits.
func waitPidFile(path string, runcDone <-chan struct{}) (int, error) {
	deadline := time.Now().Add(execKillGrace)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		pid, err := readPidFile(path)
		if err == nil || time.Now().After(deadline) {
			return pid, err
		}
		select {
		case <-time.After(delay):
		case <-runcDone:
			return 0, errors.New("runtime exited before starting the process")
		}
	}
}

// runtimeLogError returns the last error runc wrote to its --log file.
func runtimeLogError(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var last string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			last = strings.TrimSpace(entry.Msg)
		}
	}
	return last
}

// execStartTimeout bounds how long the runtime may take to start an exec'd
// process before the command's own timeout counts.
const execStartTimeout = time.Minute

// waitForFile returns a channel closed once path exists, polled with a
// backoff from 1 to 10 ms; it gives up silently when done closes.
func waitForFile(path string, done <-chan struct{}) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		delay := time.Millisecond
		for {
			if _, err := os.Stat(path); err == nil {
				close(ch)
				return
			}
			select {
			case <-done:
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 10*time.Millisecond)
		}
	}()
	return ch
}
