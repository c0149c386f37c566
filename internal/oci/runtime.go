package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/proctree"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

// Config describes one runtime handler (RuntimeClass) and where its state lives.
type Config struct {
	// Handler names the runtime in messages ("runc", "crun", "kata").
	Handler string
	// RuntimePath is the runc-compatible binary, e.g. /usr/sbin/runc.
	RuntimePath string
	// RuntimeRoot is passed as the runtime's --root. Each handler needs its
	// own: runtimes keep their container state there.
	RuntimeRoot string
	// ConmonPath is the monitor binary, e.g. /usr/bin/conmon.
	ConmonPath string
	// StateDir belongs to this package (see the package comment). Keep it
	// short: attach socket paths under it must fit a unix socket address.
	StateDir string
	// SystemdCgroup selects the systemd cgroup driver (--systemd-cgroup);
	// the spec's cgroupsPath must then be "slice:prefix:name".
	SystemdCgroup bool
	// MonitorCgroups puts each conmon in a cgroup beside its container's,
	// under the same parent (cgroupfs driver and absolute cgroupsPaths only).
	MonitorCgroups bool
	// Logger receives warnings about monitors and cleanup; nil discards.
	Logger *slog.Logger
	// Retired marks a handler that is no longer configured but still has
	// containers (see RetiredConfig): Create is refused, the rest works.
	Retired bool
	// CallTimeout bounds each command of the runtime binary (Create's
	// conmon + runtime create, Start, Kill, Delete, State, UpdateResources)
	// on top of the caller's deadline; 0 = DefaultCallTimeout.
	CallTimeout time.Duration
	// RuntimeArgs come before the subcommand on every call of the runtime,
	// conmon's included (the handler's runtime_args).
	RuntimeArgs []string
	// Sandboxed: the runtime runs each pod in one sandbox (gVisor, Kata).
	// A container joining a pod's sandbox gets its stdio from the runtime's
	// start command, not create, so conmon runs it through the relay
	// (relay.go).
	Sandboxed bool
	// RelayPath is the binary whose hidden "oci-relay" verb is the relay
	// (the daemon's own); needed only when Sandboxed.
	RelayPath string
}

// DefaultCallTimeout bounds a runtime command when Config.CallTimeout is 0.
const DefaultCallTimeout = 4 * time.Minute

func (r *Runtime) callTimeout() time.Duration {
	if r.cfg.CallTimeout > 0 {
		return r.cfg.CallTimeout
	}
	return DefaultCallTimeout
}

// Runtime drives one OCI runtime binary and one conmon per container. Its
// methods are safe for concurrent use; callers serialise operations on one
// container (create before start, and so on).
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	exits *exitWatcher
	// retired starts as cfg.Retired; a configuration reload sets it
	// (SetRetired).
	retired atomic.Bool

	mu       sync.Mutex
	monitors map[string]*monitor      // by container id, while conmon runs
	placing  map[string]chan struct{} // monitor cgroup moves in flight, closed when done
	inits    map[string]int           // pidfds of the inits this daemon created, until deleted (initsignal.go)
	closed   bool
	stop     chan struct{}  // closed by Close
	wg       sync.WaitGroup // monitor supervisors
}

// commandWaitDelay bounds how long a finished runtime command may keep us
// waiting for its output pipes, held open by a leaked grandchild.
const commandWaitDelay = 5 * time.Second

// New checks the configuration, creates the state directories, starts the
// exit-file watcher and re-arms the watch of every conmon that survived a
// restart of the daemon.
func New(cfg Config) (*Runtime, error) {
	if cfg.Handler == "" {
		cfg.Handler = filepath.Base(cfg.RuntimePath)
	}
	for name, p := range map[string]string{
		"runtime path": cfg.RuntimePath, "runtime root": cfg.RuntimeRoot,
		"conmon path": cfg.ConmonPath, "state dir": cfg.StateDir,
	} {
		if p == "" || !filepath.IsAbs(p) {
			return nil, errdefs.InvalidArgument("oci %s: %s must be an absolute path, got %q", cfg.Handler, name, p)
		}
	}
	bins := []string{cfg.RuntimePath, cfg.ConmonPath}
	if cfg.Sandboxed && !cfg.Retired {
		if cfg.RelayPath == "" || !filepath.IsAbs(cfg.RelayPath) {
			return nil, errdefs.InvalidArgument("oci %s: a sandboxed runtime needs an absolute relay path, got %q", cfg.Handler, cfg.RelayPath)
		}
		bins = append(bins, cfg.RelayPath)
	}
	for _, bin := range bins {
		fi, err := os.Stat(bin)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return nil, errdefs.FailedPrecondition("oci %s: %s is not an executable file", cfg.Handler, bin)
		}
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, monitors: map[string]*monitor{}, inits: map[string]int{}, stop: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("runtime", cfg.Handler)
	r.retired.Store(cfg.Retired)
	for _, d := range []string{cfg.RuntimeRoot, r.exitsDir(), r.attachDir(), r.ctrRoot()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("oci %s: %w", cfg.Handler, err)
		}
	}
	w, err := newExitWatcher(r.exitsDir())
	if err != nil {
		return nil, fmt.Errorf("oci %s: watch exit dir: %w", cfg.Handler, err)
	}
	r.exits = w
	if !cfg.Retired {
		if err := r.writeHandlerRecord(); err != nil {
			w.close()
			return nil, fmt.Errorf("oci %s: %w", cfg.Handler, err)
		}
	}
	r.recoverAll()
	return r, nil
}

// Close stops watching. Containers and their conmons keep running; a new
// Runtime over the same StateDir picks them up again. Pending WaitExit calls
// return ErrUnavailable.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.closeInitsLocked()
	ms := make([]*monitor, 0, len(r.monitors))
	for _, m := range r.monitors {
		ms = append(ms, m)
	}
	r.mu.Unlock()
	close(r.stop)
	for _, m := range ms {
		if m.watch != nil {
			m.watch.close()
		}
	}
	r.wg.Wait()
	return r.exits.close()
}

// List returns the ids of the containers that have state here: created (or
// half-created before a crash) and not yet deleted. The daemon compares it
// with its own records and deletes the orphans.
func (r *Runtime) List() ([]string, error) {
	ents, err := os.ReadDir(r.ctrRoot())
	if err != nil {
		return nil, fmt.Errorf("oci %s: list: %w", r.cfg.Handler, err)
	}
	ids := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.IsDir() && validID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// AttachSocketPath is the SOCK_SEQPACKET socket conmon serves for attach.
func (r *Runtime) AttachSocketPath(id string) string {
	return filepath.Join(r.attachLink(id), "attach")
}

// attachLink is conmon's symlink to the bundle, named by attachName.
func (r *Runtime) attachLink(id string) string { return filepath.Join(r.attachDir(), attachName(id)) }

// attachName shortens long container IDs for the attach symlink: a 64-hex ID
// under a state dir like /run/cradle-critest/state/oci/runc/attach/ would push
// the socket path past the 108 bytes a unix socket address holds. A hash,
// not a prefix, so two IDs sharing a long prefix never share a socket.
func attachName(id string) string {
	if len(id) <= 32 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func (r *Runtime) exitsDir() string               { return filepath.Join(r.cfg.StateDir, "exits") }
func (r *Runtime) attachDir() string              { return filepath.Join(r.cfg.StateDir, "attach") }
func (r *Runtime) ctrRoot() string                { return filepath.Join(r.cfg.StateDir, "ctr") }
func (r *Runtime) ctrDir(id string) string        { return filepath.Join(r.ctrRoot(), id) }
func (r *Runtime) exitFile(id string) string      { return filepath.Join(r.exitsDir(), id) }
func (r *Runtime) conmonPidFile(id string) string { return filepath.Join(r.ctrDir(id), "conmon.pid") }
func (r *Runtime) pidFile(id string) string       { return filepath.Join(r.ctrDir(id), "pid") }

// globalArgs come before the runtime's subcommand on every call.
func (r *Runtime) globalArgs() []string {
	args := []string{"--root", r.cfg.RuntimeRoot}
	if r.cfg.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	return append(args, r.cfg.RuntimeArgs...)
}

// run executes the runtime with args and returns its stdout. A failure
// carries the runtime's own error message and, where it is recognisable, an
// errdefs kind. The command runs in its own process group; when ctx ends or
// the call timeout passes it is killed with its group and descendants
// (proctree.Kill): a runtime that is a wrapper script must leave neither
// running children nor zombies behind.
func (r *Runtime) run(ctx context.Context, stdin io.Reader, args ...string) (_ []byte, err error) {
	ctx, span := tracing.Start(ctx, "oci."+args[0], attribute.String("oci.handler", r.cfg.Handler))
	defer func() { tracing.End(span, err) }()
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	defer cancel()
	cmd := exec.CommandContext(ctx, r.cfg.RuntimePath, append(r.globalArgs(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return proctree.Kill(cmd.Process) }
	cmd.WaitDelay = commandWaitDelay
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, errdefs.WithKind(kindOfContext(ctxErr),
				fmt.Errorf("%s %s: %w", r.cfg.Handler, args[0], ctxErr))
		}
		msg := runtimeMessage(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), errdefs.WithKind(classify(msg),
			fmt.Errorf("%s %s: %s", r.cfg.Handler, strings.Join(args, " "), msg))
	}
	return stdout.Bytes(), nil
}

func kindOfContext(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errdefs.ErrDeadlineExceeded
	}
	return err
}

// errKindUnknown marks runtime failures no errdefs kind describes.
var errKindUnknown = errors.New("runtime error")

// classify maps the runtime's error text to an errdefs kind. runc and crun
// word these differently; the texts below are what they print.
func classify(msg string) error {
	m := strings.ToLower(msg)
	switch {
	case strings.HasPrefix(m, "container") && strings.Contains(m, "does not exist"),
		// gVisor: a container (or its whole sandbox) it has no state for.
		strings.HasPrefix(m, "loading container") && (strings.Contains(m, "does not exist") || strings.Contains(m, "no such file")):
		return errdefs.ErrNotFound
	case strings.Contains(m, "already exists"):
		return errdefs.ErrAlreadyExists
	case strings.Contains(m, "not running"), strings.Contains(m, "not stopped"),
		strings.Contains(m, "stopped state"), strings.Contains(m, "no such process"),
		strings.Contains(m, "cannot exec"), strings.Contains(m, "cannot start"), strings.Contains(m, "paused"),
		strings.Contains(m, "cannot signal container"): // gVisor, of a container not running
		return errdefs.ErrFailedPrecondition
	}
	return errKindUnknown
}

// runtimeMessage extracts the error from runtime stderr: runc prints logrus
// lines (time=... level=error msg="..."), crun plain text. The last error
// line wins; it is the one that made the command fail.
func runtimeMessage(stderr string) string {
	var last string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if i := strings.Index(line, `msg="`); i >= 0 {
			if !strings.Contains(line, "level=error") && !strings.Contains(line, "level=fatal") && last != "" {
				continue
			}
			line = unquoteLogfmt(line[i+len(`msg=`):])
		}
		last = line
	}
	return last
}

// unquoteLogfmt returns the quoted value at the start of s.
func unquoteLogfmt(s string) string {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
