package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

// daemon is one runtime under test: a process this program started in a
// session of its own and stops by its pid, and kubelet's CRI clients to it.
// (Duplicated from bench/pull in a trimmed form: the two programs share no
// package yet, see README.)
type daemon struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	socket  string
	done    chan struct{}
	exitErr error

	runtime internalapi.RuntimeService
	images  internalapi.ImageManagerService

	// isMonitor tells whether a process (by its command line) is one of
	// this runtime's per-pod monitors: containerd's shims or cradle's conmons.
	isMonitor func(argv []string) bool
}

// startDaemon runs argv with its output in logPath and waits until it serves
// CRI on socket.
func startDaemon(ctx context.Context, name string, argv []string, logPath, socket string) (*daemon, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = daemonEnv()
	// A session of its own: a Ctrl-C on the terminal reaches only this
	// program, which then tears the pods down and stops the daemon in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, logPath: logPath, socket: socket, done: make(chan struct{})}
	go func() { d.exitErr = cmd.Wait(); close(d.done) }()
	if err := d.waitReady(ctx, 60*time.Second); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// daemonEnv is this program's environment without proxies: every request
// of the benchmark goes to 127.0.0.1.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

// waitReady polls until the runtime service answers, then opens both CRI
// services with kubelet's default 2 minute call timeout.
func (d *daemon) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		if _, err := os.Stat(d.socket); err == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			rt, err := remote.NewRemoteRuntimeService(actx, "unix://"+d.socket, 2*time.Minute, nil, false)
			cancel()
			if err == nil {
				d.runtime = rt
				im, err := remote.NewRemoteImageService(ctx, "unix://"+d.socket, 2*time.Minute, nil, false)
				if err != nil {
					return fmt.Errorf("%s answers CRI but its image service does not: %w (log: %s)", d.name, err, d.logPath)
				}
				d.images = im
				return nil
			}
			lastErr = err
		}
		select {
		case <-d.done:
			return fmt.Errorf("%s exited during start-up (%v); last lines of %s:\n%s", d.name, d.exitErr, d.logPath, d.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve CRI on %s within %v (last error: %v); see %s", d.name, d.socket, limit, lastErr, d.logPath)
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop closes the clients and sends SIGTERM to the daemon's pid, SIGKILL
// after 30 s. Monitors outlive their daemon by design; the caller stops them.
func (d *daemon) stop() {
	bg := context.Background()
	if d.images != nil {
		_ = d.images.Close(bg)
	}
	if d.runtime != nil {
		_ = d.runtime.Close(bg)
	}
	if !d.alive() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "%s (pid %d) ignored SIGTERM for 30s: SIGKILL\n", d.name, d.pid())
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// explain adds the daemon's log tail to err when the daemon has died.
func (d *daemon) explain(err error) error {
	if err == nil || d.alive() {
		return err
	}
	return fmt.Errorf("%w\n%s exited (%v); last lines of %s:\n%s", err, d.name, d.exitErr, d.logPath, d.logTail(20))
}

func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
