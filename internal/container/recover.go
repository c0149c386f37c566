package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/bounded"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// recoveryWorkers bounds how many containers are reconciled at once: each
// may run the OCI runtime, and a node restarting with hundreds of
// containers must not fork hundreds of runc processes together.
const recoveryWorkers = 8

// recoveryTimeout bounds the reconciliation of one container; a runtime
// that hangs costs that container this long, never the others or serving.
const recoveryTimeout = 60 * time.Second

// recover loads every record into memory and queues what needs the
// runtime or the kernel for the background: New returns (and the daemon
// serves) as soon as the records are read. Loading only reads files and
// takes layer references, so the layer store's Prune, which runs right
// after, cannot remove a layer that a container still mounts.
//
// Containers a crash left half-created or half-removed are invisible (as
// they were) until their undo ends. Kept containers are listed at once with
// their recorded state; an operation on one that is still being reconciled
// waits for it within the caller's deadline (see waitRecovered).
func (m *Manager) recover() error {
	ents, err := os.ReadDir(recordRoot(m.cfg.Root))
	if err != nil {
		return fmt.Errorf("container manager: %w", err)
	}
	known := map[string]bool{}
	var jobs []func(ctx context.Context)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		known[id] = true
		if job := m.load(id); job != nil {
			jobs = append(jobs, job)
		}
	}
	// Bundles without a record: the record was removed first.
	states, err := os.ReadDir(stateRoot(m.cfg.State))
	if err != nil {
		return fmt.Errorf("container manager: %w", err)
	}
	for _, e := range states {
		if id := e.Name(); e.IsDir() && !known[id] {
			jobs = append(jobs, func(ctx context.Context) { m.recovered(m.cleanOrphan(ctx, id), metricsOrphan) })
		}
	}
	bounded.Go(m.ctx, &m.recovery, recoveryWorkers, recoveryTimeout, jobs)
	return nil
}

// load reads one container's record and returns the work its
// reconciliation needs, nil when none.
func (m *Manager) load(id string) func(ctx context.Context) {
	rec, err := load(m.dir(id))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(filepath.Join(m.dir(id), recordName+CorruptSuffix)); serr == nil {
			// Set aside earlier: the dir is the operator's now, but the
			// cleanup of the rest may have been cut short.
			return func(ctx context.Context) { m.cleanSetAside(ctx, id) }
		}
		// A crash between mkdir and the intent record, or in the middle
		// of removing the directory.
		return func(ctx context.Context) { m.recovered(m.cleanOrphan(ctx, id), metricsOrphan) }
	}
	c := &ctr{rec: rec}
	if err == nil {
		c.cfg, err = rec.config()
	}
	if err != nil {
		m.setAside(id, err)
		m.cfg.Observer.Recovered(recoveredKind, "set_aside")
		return func(ctx context.Context) { m.cleanSetAside(ctx, id) }
	}
	// References first, so no Prune can take a layer a mount still uses;
	// an undo releases them.
	if err := m.acquire(c); err != nil && rec.State != Creating && rec.State != Removing {
		// Its mount still pins the files; only a new mount is impossible.
		m.log.Warn("container's image layers are gone", "id", id, "err", err)
	}
	if err := m.acquireImageVolumes(c); err != nil && rec.State != Creating && rec.State != Removing {
		m.log.Warn("container's image volume layers are gone", "id", id, "err", err)
	}
	if rec.State == Creating || rec.State == Removing {
		return func(ctx context.Context) {
			rt, _ := m.runtime(rec.Handler)
			err := m.undo(ctx, rt, c)
			if err != nil {
				m.log.Warn("undo interrupted container create or remove", "id", id, "state", rec.State, "err", err)
			} else if rec.State == Removing {
				m.emit(events.Deleted, c) // a Remove the crash cut off
			}
			m.recovered(err, "ok")
		}
	}
	if rec.State != Exited {
		c.recovered = make(chan struct{})
	}
	c.ver = m.gen.Add(1) // not yet shared
	m.mu.Lock()
	m.containers[id] = c
	m.names[nameKey(c.rec.SandboxID, c.rec.Name)] = doneReservation(c.rec.ConfigHash, id)
	m.mu.Unlock()
	m.changed()
	if rec.State == Exited {
		return nil
	}
	return func(ctx context.Context) {
		defer close(c.recovered)
		c.op.Lock()
		defer c.op.Unlock()
		m.recovered(m.restore(ctx, c), "ok")
	}
}

// recoveredKind is the kind label of cradle_recovered_objects_total.
const (
	recoveredKind = "container"
	metricsOrphan = "orphan_removed"
)

// recovered reports one reconciliation: result when err is nil, failed
// otherwise.
func (m *Manager) recovered(err error, result string) {
	if err != nil {
		result = "failed"
	}
	m.cfg.Observer.Recovered(recoveredKind, result)
}

// setAside renames an unreadable record to record.json.corrupt and logs
// where it went.
func (m *Manager) setAside(id string, cause error) {
	from := filepath.Join(m.dir(id), recordName)
	if err := SetAside(m.cfg.Root, id); err != nil {
		m.log.Error("unreadable container record could not be set aside", "id", id, "record", from, "err", cause, "setAsideErr", err)
		return
	}
	m.log.Error("unreadable container record set aside; its processes, mounts and bundle are removed, its writable layer kept",
		"id", id, "record", from, "setAside", from+CorruptSuffix, "err", cause)
}

// cleanSetAside removes what a container whose record was set aside has
// in every runtime, the kernel and the state dir, and leaves its dir under
// root (the unreadable record and the writable layer) to an operator.
func (m *Manager) cleanSetAside(ctx context.Context, id string) {
	for h, rt := range m.cfg.Runtimes.All() {
		if !rt.Has(id) {
			continue
		}
		if err := rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			m.log.Warn("delete container with a set-aside record", "id", id, "handler", h, "err", err)
		}
	}
	if err := RemoveBundle(m.cfg.State, id); err != nil {
		m.log.Warn("remove bundle of a container with a set-aside record", "id", id, "err", err)
	}
}

// WaitRecovered blocks until the reconciliation New started has ended.
func (m *Manager) WaitRecovered() { m.recovery.Wait() }

// waitRecovered lets an operation on c wait, within ctx, for its
// reconciliation to end; past ctx it fails with Unavailable, which clients
// retry.
func waitRecovered(ctx context.Context, c *ctr) error {
	if c.recovered == nil {
		return nil
	}
	select {
	case <-c.recovered:
		return nil
	case <-ctx.Done():
		return errdefs.New(errdefs.ErrUnavailable, "container %s is still being recovered after a daemon restart; retry", c.rec.ID)
	}
}

// cleanOrphan removes a container that has no usable record from every
// runtime (the handler is unknown), the kernel and the disk.
func (m *Manager) cleanOrphan(ctx context.Context, id string) error {
	var errs []error
	for h, rt := range m.cfg.Runtimes.All() {
		if err := rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			m.log.Warn("delete orphan container", "id", id, "handler", h, "err", err)
			errs = append(errs, err)
		}
	}
	if err := m.undo(ctx, nil, &ctr{rec: record{ID: id}}); err != nil {
		m.log.Warn("remove orphan container", "id", id, "err", err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// restore finds out the truth about a kept container's process. The
// caller holds c.op. An error says what could not be put right (the
// container is still recorded and watched).
func (m *Manager) restore(ctx context.Context, c *ctr) error {
	id := c.rec.ID
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		m.recordExit(c, oci.Exit{Code: 255, Message: err.Error()})
		return nil
	}
	var failed error
	if _, err := m.cfg.Sandboxes.Sandbox(c.rec.SandboxID); errors.Is(err, errdefs.ErrNotFound) {
		// Its pod's record was lost or set aside: the pod's network was
		// torn down as an orphan's and its IP may go to another pod, so
		// the container must not run on. The watch records its exit.
		m.log.Warn("container's pod sandbox is gone; killing the container", "id", id, "pod", c.rec.SandboxID)
		if err := rt.Kill(ctx, id, unix.SIGKILL, true); err != nil {
			m.log.Warn("kill container of a lost pod", "id", id, "err", err)
			failed = err
		}
	}
	exit, exited, err := rt.ExitStatus(id)
	switch {
	case exited:
		m.recordExit(c, exit)
		return failed
	case errors.Is(err, errdefs.ErrNotFound):
		// Its runtime state is gone: the state dir was wiped (a reboot).
		m.recordExit(c, oci.Exit{Code: 255, Message: "container state lost (host rebooted?): " + err.Error()})
		return failed
	case err != nil:
		// A corrupt exit file: the process is gone, how it ended is not known.
		m.recordExit(c, oci.Exit{Code: 255, Message: err.Error()})
		return failed
	}
	if err := m.ensureRootfs(c); err != nil {
		m.log.Warn("remount container rootfs", "id", id, "err", err)
		failed = err
	}
	if _, err := m.mountImageVolumes(c); err != nil {
		m.log.Warn("remount container image volumes", "id", id, "err", err)
		failed = err
	}
	c.mu.Lock()
	c.exited = make(chan struct{})
	c.mu.Unlock()
	if c.state() == Created {
		// A start the crash cut off before its record.
		st, err := rt.State(ctx, id)
		if err != nil {
			return errors.Join(failed, err)
		}
		if st.Status == oci.StatusCreated {
			return failed
		}
		if err := m.update(c, func(r *record) { r.State, r.StartedAt = Running, time.Now() }); err != nil {
			m.log.Warn("record start", "id", id, "err", err)
			failed = err
		}
	}
	m.watch(rt, c)
	return failed
}

// ensureRootfs mounts the rootfs of a live container again if it is gone,
// so exec'd tools and Remove find what they expect.
func (m *Manager) ensureRootfs(c *ctr) error {
	mounted, err := isMounted(m.rootfs(c.rec.ID))
	if err != nil || mounted {
		return err
	}
	if !c.layers {
		return errdefs.FailedPrecondition("layers of container %s are gone", c.rec.ID)
	}
	return mountRootfs(m.dir(c.rec.ID), m.rootfs(c.rec.ID), m.lowerDirs(c.rec.ChainIDs))
}
