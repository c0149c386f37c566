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
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

// CreateOpts describes one container to create under conmon.
type CreateOpts struct {
	ID string
	// Bundle is the directory with config.json. conmon also puts its ctl and
	// winsz FIFOs and the attach socket there.
	Bundle string
	// LogPath is the CRI log file; conmon appends to it and creates it if
	// needed (its directory must exist).
	LogPath string
	// LogSizeMax makes conmon truncate the log file when it would grow past
	// this many bytes; 0 leaves rotation to kubelet (rename + ReopenLog).
	LogSizeMax int64
	// Terminal must match the spec's process.terminal: conmon then holds the
	// pty and the log has only stdout lines.
	Terminal bool
	// Stdin keeps a pipe to the container's stdin for attach; StdinOnce
	// closes it after the first attach ends.
	Stdin, StdinOnce bool
	// NoPivot makes the runtime use MS_MOVE instead of pivot_root (needed
	// when the root is on a ramfs).
	NoPivot bool
	// PlaceMonitor, when set, is called with conmon's pid before conmon
	// forks anything, e.g. to move it into the pod's cgroup.
	PlaceMonitor func(pid int) error

	relay bool // set by Create: the container runs through the relay (relay.go)
}

// DefaultCreateTimeout is what bounds Create on a handler without its own
// Config.CallTimeout (a runtime that hangs must not hang the caller
// forever); callers that give a create a budget of its own use it.
const DefaultCreateTimeout = DefaultCallTimeout

// Create starts conmon, which runs `runtime create`, and returns the pid of
// the container's init (the container is in state created). On failure
// nothing is left behind. A container id that already has state here is
// refused with ErrAlreadyExists, before anything touches its files.
func (r *Runtime) Create(ctx context.Context, o CreateOpts) (pid int, err error) {
	ctx, span := tracing.Start(ctx, "oci.create",
		attribute.String("oci.handler", r.cfg.Handler), attribute.String("container.id", o.ID))
	defer func() { tracing.End(span, err) }()
	if err := r.refuseRetired(o.ID); err != nil {
		return 0, err
	}
	if err := r.validateCreate(o); err != nil {
		return 0, err
	}
	o.relay = r.relayed(o.Bundle)
	// The call timeout bounds conmon and the runtime's create together.
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	defer cancel()
	// The exclusive mkdir claims the id: a second Create must not get as far
	// as conmon, which would replace the first one's FIFOs and symlink.
	if err := os.Mkdir(r.ctrDir(o.ID), 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, errdefs.AlreadyExists("container %s already exists in %s", o.ID, r.cfg.Handler)
		}
		return 0, fmt.Errorf("create container %s: %w", o.ID, err)
	}
	var monitorWatch *pidWatch
	defer func() {
		if err != nil {
			r.abortCreate(o, monitorWatch, !errors.Is(err, errdefs.ErrAlreadyExists))
		}
	}()

	monitorCg, err := r.monitorCgroupFor(o.Bundle)
	if err != nil {
		return 0, fmt.Errorf("create container %s: %w", o.ID, err)
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer syncR.Close()
	cmd := exec.CommandContext(ctx, r.cfg.ConmonPath, r.conmonArgs(o)...)
	cmd.Dir = r.ctrDir(o.ID) // conmon writes its "oom" file to its cwd
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "_OCI_SYNCPIPE=3"}
	cmd.ExtraFiles = []*os.File{syncW}
	// stderr is a file, not a pipe: the monitor conmon forks inherits it,
	// and a pipe it holds open would keep Wait waiting (under load past
	// WaitDelay, failing a create that worked), while closing the pipe on
	// it could kill it with SIGPIPE. Unlinked at once: nothing to clean up.
	stderr, err := os.CreateTemp(r.ctrDir(o.ID), ".conmon-stderr-*")
	if err != nil {
		syncW.Close()
		return 0, fmt.Errorf("create container %s: %w", o.ID, err)
	}
	os.Remove(stderr.Name())
	defer stderr.Close()
	cmd.Stderr = stderr
	cmd.WaitDelay = commandWaitDelay
	var startW *os.File
	if o.PlaceMonitor != nil {
		var startR *os.File
		if startR, startW, err = os.Pipe(); err != nil {
			syncW.Close()
			return 0, err
		}
		defer startW.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, startR)
		cmd.Env = append(cmd.Env, "_OCI_STARTPIPE=4")
		defer startR.Close()
	}
	// conmon start: until the first conmon has forked the monitor and
	// exited; the monitor then runs the runtime's create, read below.
	_, conmonSpan := tracing.Start(ctx, "conmon.start")
	t0 := time.Now()
	err = cmd.Start()
	syncW.Close() // conmon has its copy; ours would hide conmon's EOF
	if err != nil {
		tracing.End(conmonSpan, err)
		return 0, fmt.Errorf("start conmon for %s: %w", o.ID, err)
	}
	if o.PlaceMonitor != nil {
		// conmon blocks reading the start pipe before it forks.
		if perr := o.PlaceMonitor(cmd.Process.Pid); perr != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			tracing.End(conmonSpan, perr)
			return 0, fmt.Errorf("place conmon of %s: %w", o.ID, perr)
		}
		if _, err = startW.Write([]byte{0}); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			tracing.End(conmonSpan, err)
			return 0, fmt.Errorf("start conmon of %s: %w", o.ID, err)
		}
	}
	tStarted := time.Now()
	// The first conmon forks the real monitor, writes its pid and exits.
	err = cmd.Wait()
	tracing.End(conmonSpan, err)
	if err != nil {
		return 0, errdefs.WithKind(kindOf(ctx, errKindUnknown),
			fmt.Errorf("conmon for %s: %w: %s", o.ID, err, tail(stderr, 4096)))
	}
	monitorPid, err := readPidFile(r.conmonPidFile(o.ID))
	if err != nil {
		return 0, fmt.Errorf("conmon for %s: %w", o.ID, err)
	}
	if monitorWatch, err = watchPid(monitorPid); err != nil {
		return 0, fmt.Errorf("conmon for %s: %w", o.ID, err)
	}
	tForked := time.Now()
	if pid, err = r.readSync(ctx, o.ID, syncR); err != nil {
		return 0, err
	}
	// Where a create spends its time: starting conmon, conmon forking its
	// monitor, and the runtime's create (nearly all of it).
	r.log.Debug("conmon create", "container", o.ID, "exec", tStarted.Sub(t0), "fork", tForked.Sub(tStarted), "create", time.Since(tForked))
	r.openInit(o.ID, pid)
	crashpoint.Hit(crashpoint.CreateConmon)
	rec := record{Bundle: o.Bundle, LogPath: o.LogPath, Pid: pid, MonitorPid: monitorPid, Created: time.Now(), Relayed: o.relay}
	if err = r.writeRecord(o.ID, rec); err != nil {
		return 0, err
	}
	r.addMonitor(o.ID, monitorWatch)
	if monitorCg != "" {
		r.placeMonitorAsync(o.ID, monitorCg, monitorPid)
	}
	return pid, nil
}

func (r *Runtime) validateCreate(o CreateOpts) error {
	if err := validID(o.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(o.Bundle) {
		return errdefs.InvalidArgument("container %s: bundle must be an absolute path, got %q", o.ID, o.Bundle)
	}
	if _, err := os.Stat(filepath.Join(o.Bundle, "config.json")); err != nil {
		return errdefs.InvalidArgument("container %s: bundle %s has no config.json", o.ID, o.Bundle)
	}
	// conmon reads "driver:path" and cuts at every ':'.
	if !filepath.IsAbs(o.LogPath) || strings.ContainsAny(o.LogPath, ":\n") {
		return errdefs.InvalidArgument("container %s: log path must be absolute and free of ':', got %q", o.ID, o.LogPath)
	}
	if fi, err := os.Stat(filepath.Dir(o.LogPath)); err != nil || !fi.IsDir() {
		return errdefs.InvalidArgument("container %s: log directory %s does not exist", o.ID, filepath.Dir(o.LogPath))
	}
	if o.LogSizeMax < 0 {
		return errdefs.InvalidArgument("container %s: negative log size limit", o.ID)
	}
	if len(r.AttachSocketPath(o.ID)) >= maxSocketPath {
		return errdefs.InvalidArgument("container %s: attach socket path %s is too long for a unix socket; use a shorter state dir",
			o.ID, r.AttachSocketPath(o.ID))
	}
	return nil
}

// maxSocketPath is sizeof(sockaddr_un.sun_path), the terminating NUL included.
const maxSocketPath = 108

func (r *Runtime) conmonArgs(o CreateOpts) []string {
	dir := r.ctrDir(o.ID)
	args := []string{
		"--api-version", // sync pipe speaks {"data": pid}
		"-c", o.ID,
		"-u", attachName(o.ID), // names the attach socket directory
		"-n", o.ID,
	}
	args = append(args, r.conmonRuntime(o)...)
	args = append(args,
		"-b", o.Bundle,
		"-p", r.pidFile(o.ID),
		"-P", r.conmonPidFile(o.ID),
		"--persist-dir", dir,
		"--exit-dir", r.exitsDir(),
		"--socket-dir-path", r.attachDir(),
		"-l", "k8s-file:"+o.LogPath,
	)
	if r.cfg.SystemdCgroup && !o.relay {
		args = append(args, "--systemd-cgroup")
	}
	if o.LogSizeMax > 0 {
		args = append(args, "--log-size-max", strconv.FormatInt(o.LogSizeMax, 10))
	}
	if o.Terminal {
		args = append(args, "--terminal")
	} else if o.Stdin {
		args = append(args, "--stdin")
		if !o.StdinOnce {
			args = append(args, "--leave-stdin-open")
		}
	}
	if o.NoPivot {
		args = append(args, "--no-pivot")
	}
	return args
}

// syncMessage is conmon's report on the sync pipe (API version 1).
type syncMessage struct {
	Data    int    `json:"data"`
	Message string `json:"message"`
}

// readSync waits for conmon to report the container pid, or the runtime's
// error output when create failed.
func (r *Runtime) readSync(ctx context.Context, id string, pipe *os.File) (int, error) {
	type result struct {
		msg syncMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var msg syncMessage
		err := json.NewDecoder(io.LimitReader(pipe, 1<<20)).Decode(&msg)
		ch <- result{msg, err}
	}()
	select {
	case res := <-ch:
		switch {
		case errors.Is(res.err, io.EOF):
			return 0, fmt.Errorf("create container %s: conmon exited without reporting a pid (runtime failed without an error message)", id)
		case res.err != nil:
			return 0, fmt.Errorf("create container %s: read conmon sync pipe: %w", id, res.err)
		case res.msg.Data <= 0:
			msg := runtimeMessage(res.msg.Message)
			if msg == "" {
				msg = "no error message"
			}
			return 0, errdefs.WithKind(classify(msg), fmt.Errorf("create container %s: %s", id, msg))
		}
		return res.msg.Data, nil
	case <-ctx.Done():
		pipe.Close() // ends the decoder
		return 0, errdefs.WithKind(kindOfContext(ctx.Err()),
			fmt.Errorf("create container %s: waiting for conmon: %w", id, ctx.Err()))
	}
}

// abortCreate undoes a failed Create: conmon and everything below it (runc
// create, runc init, hooks) killed and reaped, the runtime's half-made
// container deleted, our files removed. When the runtime refused the id
// because it already knows it, that container is not ours to delete.
func (r *Runtime) abortCreate(o CreateOpts, monitorWatch *pidWatch, deleteRuntime bool) {
	if monitorWatch != nil {
		if !monitorWatch.exitedProcess() {
			killed := killProcessTree(monitorWatch)
			select {
			case <-monitorWatch.done:
			case <-time.After(monitorExitGrace):
				r.log.Warn("conmon of failed create did not exit", "container", o.ID, "pid", monitorWatch.pid)
			}
			reapKilled(killed, monitorExitGrace)
		}
		monitorWatch.close()
	}
	if !deleteRuntime {
		err := errors.Join(removeIfNotDir(r.attachLink(o.ID)), os.RemoveAll(r.ctrDir(o.ID)))
		if err != nil {
			r.log.Warn("clean up failed create", "container", o.ID, "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), superviseTimeout)
	defer cancel()
	if err := r.Delete(ctx, o.ID, true); err != nil {
		r.log.Warn("clean up failed create", "container", o.ID, "err", err)
	}
	if monitorWatch == nil {
		return // the runtime never ran
	}
	// runc leaves the cgroup of a container it never finished creating.
	if err := r.removeSpecCgroup(o.Bundle); err != nil {
		r.log.Warn("remove cgroup of failed create", "container", o.ID, "err", err)
	}
}

func kindOf(ctx context.Context, fallback error) error {
	if err := ctx.Err(); err != nil {
		return kindOfContext(err)
	}
	return fallback
}

func readPidFile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %s: %q", path, data)
	}
	return pid, nil
}

// tail returns up to the last limit bytes written to f, trimmed.
func tail(f *os.File, limit int64) string {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return ""
	}
	start := max(0, end-limit)
	buf := make([]byte, end-start)
	n, _ := f.ReadAt(buf, start)
	return strings.TrimSpace(string(buf[:n]))
}
