package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// StreamIO is the stdio of an interactive exec. Nil fields are /dev/null.
type StreamIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal runs the command on a terminal runc allocates and relays
	// to the Std fields, which should then be a terminal the caller
	// allocated: runc sizes the command's terminal like its own stdin's.
	Terminal bool
	// Winch, with Terminal, tells runc the caller's terminal was resized.
	Winch <-chan struct{}
	// Width and Height, with Terminal, size the command's terminal from
	// its creation on, before the command runs (0: runc's default).
	Width, Height uint16
}

// ExecStream runs cmd in the container with `runc exec` wired to s and
// returns its exit code (128+signal when killed). When ctx ends, the
// command and its descendants are killed and runc reaps them. Output still
// held by a background process that inherited the pipes is cut off
// execDrainTimeout after the command exits.
func (r *Runtime) ExecStream(ctx context.Context, id string, cmdline []string, s StreamIO) (int, error) {
	if err := validID(id); err != nil {
		return -1, err
	}
	if len(cmdline) == 0 || cmdline[0] == "" {
		return -1, errdefs.InvalidArgument("exec in %s: empty command", id)
	}
	proc, err := r.execProcess(id, ExecOpts{Cmd: cmdline})
	if err != nil {
		return -1, err
	}
	proc.Terminal = s.Terminal
	if s.Terminal && s.Width > 0 && s.Height > 0 {
		proc.ConsoleSize = &specs.Box{Width: uint(s.Width), Height: uint(s.Height)}
	}
	dir, err := os.MkdirTemp(r.ctrDir(id), "exec-")
	if errors.Is(err, fs.ErrNotExist) {
		return -1, errdefs.NotFound("container %s: no state in %s", id, r.cfg.Handler)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer os.RemoveAll(dir)
	procPath, pidPath, logPath := filepath.Join(dir, "process.json"), filepath.Join(dir, "pid"), filepath.Join(dir, "runc.log")
	data, err := json.Marshal(proc)
	if err != nil {
		return -1, errdefs.InvalidArgument("exec in %s: %v", id, err)
	}
	if err := os.WriteFile(procPath, data, 0o600); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}

	args := append(r.globalArgs(), "--log", logPath, "--log-format", "json",
		"exec", "--pid-file", pidPath, "--process", procPath)
	if s.Terminal {
		args = append(args, "--tty")
	}
	args = append(args, id)
	cmd := exec.Command(r.cfg.RuntimePath, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.Stdin, s.Stdout, s.Stderr
	// A client that never closes stdin must not keep Wait (and this
	// exec) alive after the command has exited.
	cmd.WaitDelay = execDrainTimeout
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	runcDone := make(chan struct{})
	go func() { _ = cmd.Wait(); close(runcDone) }()
	if s.Terminal && s.Winch != nil {
		go forwardWinch(cmd.Process, pidPath, s.Winch, runcDone)
	}
	select {
	case <-runcDone:
	case <-ctx.Done():
		r.stopExec(cmd, pidPath, runcDone)
		return -1, errdefs.WithKind(kindOfContext(ctx.Err()), fmt.Errorf("exec in %s: %w", id, ctx.Err()))
	}
	if msg := runtimeLogError(logPath); msg != "" {
		return -1, errdefs.WithKind(classify(msg), fmt.Errorf("exec in %s: %s", id, msg))
	}
	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("exec in %s: lost the runtime's exit status", id)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
	return -1, fmt.Errorf("exec in %s: runtime ended with %v", id, cmd.ProcessState)
}

// forwardWinch tells runc of terminal resizes. runc ignores SIGWINCH until
// its signal handler is installed, which is before it writes the pid file;
// a resize that comes earlier would be lost, so one SIGWINCH follows the pid
// file: runc then reads the terminal's size as it is by now.
func forwardWinch(p *os.Process, pidPath string, winch <-chan struct{}, runcDone <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second) // runcDone comes first in practice
	for ready := false; ; {
		select {
		case <-winch:
			_ = p.Signal(syscall.SIGWINCH)
		case <-tick.C:
			if !ready {
				if _, err := os.Stat(pidPath); err == nil || time.Now().After(deadline) {
					ready = true
					tick.Stop()
					_ = p.Signal(syscall.SIGWINCH)
				}
			}
		case <-runcDone:
			return
		}
	}
}
