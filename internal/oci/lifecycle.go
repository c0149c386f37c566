package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Status is the runtime's view of a container.
type Status string

// The statuses of the OCI runtime spec.
const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// State is the output of the runtime's state command.
type State struct {
	Status  Status
	Pid     int // 0 once stopped
	Bundle  string
	Created time.Time
}

// State asks the runtime. It fails with ErrNotFound for an unknown container.
func (r *Runtime) State(ctx context.Context, id string) (State, error) {
	if err := validID(id); err != nil {
		return State{}, err
	}
	out, err := r.run(ctx, nil, "state", id)
	if err != nil {
		return State{}, err
	}
	var st struct {
		Status  Status    `json:"status"`
		Pid     int       `json:"pid"`
		Bundle  string    `json:"bundle"`
		Created time.Time `json:"created"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return State{}, fmt.Errorf("%s state %s: %w", r.cfg.Handler, id, err)
	}
	return State{Status: st.Status, Pid: st.Pid, Bundle: st.Bundle, Created: st.Created}, nil
}

// Start runs the process of a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if rec, err := r.readRecord(id); err == nil && rec.Relayed {
		return r.startRelayed(ctx, id)
	}
	_, err := r.run(ctx, nil, "start", id)
	return err
}

// Kill sends sig to the container's init, or with all to every process of
// the container. A container that is not running, or no longer exists, has
// nothing to signal: that is success, so stop paths can retry freely.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if err := validID(id); err != nil {
		return err
	}
	if sig <= 0 || sig > 64 {
		return errdefs.InvalidArgument("invalid signal %d", int(sig))
	}
	if !all {
		if done, err := r.signalInit(id, sig); done {
			return err
		}
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, nil, append(args, id, strconv.Itoa(int(sig)))...)
	if errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, errdefs.ErrFailedPrecondition) {
		return nil
	}
	return err
}

// Delete removes the container from the runtime and every file this package
// and conmon made for it: the exit record included, so read ExitStatus first.
// Without force a running container is refused (ErrFailedPrecondition); with
// force it is killed. Deleting a container that does not exist succeeds.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	if err := r.deleteRuntime(ctx, id, force); err != nil {
		return err
	}
	return r.DeleteFiles(ctx, id)
}

// DeleteExited is the part of Delete that may run as soon as a container's
// exit is recorded, as containerd's shim deletes a task when it exits: the
// runtime's state and cgroup (and with them any process left in a shared
// PID namespace), conmon (which is exiting) and conmon's cgroup. The files,
// the exit record among them, stay for DeleteFiles. Like Delete it accepts
// a container the runtime no longer knows.
func (r *Runtime) DeleteExited(ctx context.Context, id string) error {
	if err := r.deleteRuntime(ctx, id, true); err != nil {
		return err
	}
	r.stopMonitor(ctx, id)
	r.waitPlacement(ctx, id)
	if err := r.removeMonitorCgroup(id); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) deleteRuntime(ctx context.Context, id string, force bool) error {
	if err := validID(id); err != nil {
		return err
	}
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	if _, err := r.run(ctx, nil, append(args, id)...); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		// A delete that failed half-way (gVisor's, of a container whose
		// sandbox is already gone) may still have removed the container:
		// if the runtime no longer knows it, it is gone.
		if _, serr := r.State(ctx, id); !errors.Is(serr, errdefs.ErrNotFound) {
			return err
		}
	}
	r.closeInit(id)
	r.quitRelay(id) // a relayed container never started: its holder waits
	return nil
}

// DeleteFiles is the rest of Delete once DeleteExited succeeded: conmon,
// its cgroup (both gone already, which costs a few syscalls to see) and
// every file of the container.
func (r *Runtime) DeleteFiles(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if m := r.monitorOf(id); m == nil || m.watch == nil {
		// No conmon known (a create cut short by a crash): one may still
		// be on its way, and must not outlive the files.
		r.killStrayMonitors(ctx, id)
	}
	r.stopMonitor(ctx, id)
	r.waitPlacement(ctx, id)
	// Before the state dir goes: it holds the record of the monitor cgroup.
	if err := r.removeMonitorCgroup(id); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}

	// The bundle path is in the record, or else behind conmon's attach
	// symlink (a create that crashed before writing the record).
	bundle := ""
	if rec, err := r.readRecord(id); err == nil {
		bundle = rec.Bundle
	} else if target, err := os.Readlink(r.attachLink(id)); err == nil {
		bundle = target
	}
	if bundle != "" && r.cfg.Sandboxed {
		// gVisor's delete of a sandbox it never started leaves the
		// sandbox's cgroup while the processes it killed are still exiting.
		r.removeCgroupWhenEmpty(ctx, id, bundle)
	}
	var errs []error
	if bundle != "" {
		for _, name := range []string{"ctl", "winsz", "attach"} {
			errs = append(errs, removeIfNotDir(filepath.Join(bundle, name)))
		}
	}
	errs = append(errs,
		removeIfNotDir(r.attachLink(id)),
		removeIfNotDir(r.exitFile(id)),
		os.RemoveAll(r.ctrDir(id)))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// removeIfNotDir removes a file, FIFO, socket or symlink; a directory there
// is not ours to remove.
func removeIfNotDir(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// UpdateResources changes the cgroup limits of a running container (`runc
// update --resources -`). Values left zero or nil are not changed.
func (r *Runtime) UpdateResources(ctx context.Context, id string, res *specs.LinuxResources) error {
	if err := validID(id); err != nil {
		return err
	}
	if res == nil {
		return errdefs.InvalidArgument("update container %s: no resources given", id)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return errdefs.InvalidArgument("update container %s: %v", id, err)
	}
	_, err = r.run(ctx, bytes.NewReader(data), "update", "--resources", "-", id)
	if err != nil && noSuchCommand(err.Error()) {
		// gVisor's runsc has no update: its sandbox is limited as a whole.
		return errdefs.New(errdefs.ErrUnimplemented, "update container %s: the runtime %s cannot change a container's resources (%v)", id, r.cfg.Handler, err)
	}
	return err
}

// noSuchCommand recognises a runtime's answer to a subcommand it lacks:
// its usage text (runsc's ends with the pointer to "runsc flags").
func noSuchCommand(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "for a list of top-level flags") || strings.Contains(m, "unknown subcommand") ||
		strings.Contains(m, "no help topic")
}

// removeCgroupWhenEmpty removes the spec's cgroup once the runtime's
// processes have left it, for a few seconds at most.
func (r *Runtime) removeCgroupWhenEmpty(ctx context.Context, id, bundle string) {
	deadline := time.NewTimer(cgroupEmptyWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := r.removeSpecCgroup(bundle)
		if err == nil {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			r.log.Warn("remove cgroup of deleted container", "container", id, "err", err)
			return
		case <-ctx.Done():
			return
		}
	}
}

// cgroupEmptyWait bounds removeCgroupWhenEmpty.
const cgroupEmptyWait = 3 * time.Second
