package benchkit

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

// DaemonSpec says how to start a runtime under test.
type DaemonSpec struct {
	Name    string   // for messages: "cradle", "containerd"
	Argv    []string // binary and arguments
	LogPath string   // stdout and stderr, appended
	Socket  string   // where it serves CRI
	Env     []string // added to the environment (which loses its proxies)

	// RuntimeTimeout and ImageTimeout bound each call of the CRI clients,
	// as kubelet's runtime-request timeout does; ImageTimeout does not bound
	// PullImage, which kubelet's client leaves unbounded too.
	RuntimeTimeout, ImageTimeout time.Duration
}

// Daemon is one runtime under test: a process this program started in a
// session of its own and stops by its pid, and kubelet's CRI clients to it.
type Daemon struct {
	Name, LogPath, Socket string

	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService

	// IsMonitor, when set, tells whether a process (by its command line) is
	// one of this runtime's per-pod monitors: containerd's shims or
	// cradle's conmons, which daemonize away from it.
	IsMonitor func(argv []string) bool

	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

// readyLimit bounds a daemon's start-up: cradle and containerd serve CRI in
// well under a second here, so a minute means something is wrong.
const readyLimit = 60 * time.Second

// StartDaemon runs spec.Argv with its output in spec.LogPath and waits until
// it serves CRI on spec.Socket.
func StartDaemon(ctx context.Context, spec DaemonSpec) (*Daemon, error) {
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", spec.Name)
	}
	logf, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(daemonEnv(os.Environ()), spec.Env...)
	// A session of its own: a Ctrl-C on the terminal reaches only this
	// program, which then tears down what it made and stops the daemon in
	// order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Name, err)
	}
	d := &Daemon{Name: spec.Name, LogPath: spec.LogPath, Socket: spec.Socket, cmd: cmd, done: make(chan struct{})}
	go func() { d.exitErr = cmd.Wait(); close(d.done) }()
	if err := d.waitReady(ctx, readyLimit, spec.RuntimeTimeout, spec.ImageTimeout); err != nil {
		d.Stop()
		return nil, err
	}
	return d, nil
}

// daemonEnv is env without proxies: every request of the benchmarks goes to
// 127.0.0.1.
func daemonEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

// waitReady polls until the runtime service answers Version, then opens the
// image service (whose constructor checks ImageFsInfo).
func (d *Daemon) waitReady(ctx context.Context, limit, runtimeTimeout, imageTimeout time.Duration) error {
	deadline := time.Now().Add(limit)
	var lastErr error
	for {
		if _, err := os.Stat(d.Socket); err == nil {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			rt, err := remote.NewRemoteRuntimeService(actx, "unix://"+d.Socket, runtimeTimeout, nil, false)
			cancel()
			if err == nil {
				d.Runtime = rt
				im, err := remote.NewRemoteImageService(ctx, "unix://"+d.Socket, imageTimeout, nil, false)
				if err != nil {
					return fmt.Errorf("%s answers CRI but its image service does not: %w (log: %s)", d.Name, err, d.LogPath)
				}
				d.Images = im
				return nil
			}
			lastErr = err
		}
		select {
		case <-d.done:
			return fmt.Errorf("%s exited during start-up (%v); last lines of %s:\n%s", d.Name, d.exitErr, d.LogPath, d.LogTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not serve CRI on %s within %v (last error: %v); see %s", d.Name, d.Socket, limit, lastErr, d.LogPath)
		}
	}
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Alive reports whether the daemon is still running.
func (d *Daemon) Alive() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Stop closes the clients and sends SIGTERM to the daemon's pid, SIGKILL
// after 30 s. Processes the daemon detached (shims, conmons) outlive it by
// design; the caller stops them.
func (d *Daemon) Stop() {
	bg := context.Background()
	if d.Images != nil {
		_ = d.Images.Close(bg)
	}
	if d.Runtime != nil {
		_ = d.Runtime.Close(bg)
	}
	if !d.Alive() {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		fmt.Fprintf(os.Stderr, "%s (pid %d) ignored SIGTERM for 30s: SIGKILL\n", d.Name, d.Pid())
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// Explain adds the daemon's log tail to err when the daemon has died, the
// likely cause of err.
func (d *Daemon) Explain(err error) error {
	if err == nil || d.Alive() {
		return err
	}
	return fmt.Errorf("%w\n%s exited (%v); last lines of %s:\n%s", err, d.Name, d.exitErr, d.LogPath, d.LogTail(20))
}

// LogTail returns the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
