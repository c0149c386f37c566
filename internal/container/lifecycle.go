package container

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// killWait bounds the wait for an exit after SIGKILL: a process stuck in
// the kernel (D state) must not hang Stop or Remove forever.
const killWait = 30 * time.Second

// Start runs a created container's process and watches for its exit.
func (m *Manager) Start(ctx context.Context, id string) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, c); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if st := c.state(); st != Created {
		return errdefs.FailedPrecondition("container %s is %s, not created", id, st)
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.exited = make(chan struct{})
	c.mu.Unlock()
	if m.cfg.NRI != nil {
		m.cfg.NRI.Start(ctx, c.view(), m.specOf(c))
	}
	started := time.Now()
	if err := rt.Start(ctx, id); err != nil && !m.startedAnyway(rt, c) {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	crashpoint.Hit(crashpoint.StartRan)
	// Noted: after a power loss a container recorded created is as dead
	// as one recorded running, and start-up and Remove treat both alike.
	if err := m.updateNote(c, func(r *record) {
		// The watcher may already have recorded a quick exit.
		if r.State == Created {
			r.State, r.StartedAt = Running, started
		}
	}); err != nil {
		m.log.Warn("record start", "id", id, "err", err)
	}
	crashpoint.Hit(crashpoint.StartRecorded)
	m.cfg.Observer.ContainerStarted(m.handlerName(c.rec.Handler))
	// Before the watcher exists, so STARTED always precedes STOPPED.
	m.emit(events.Started, c)
	m.watch(rt, c)
	if m.cfg.NRI != nil {
		m.cfg.NRI.PostStart(ctx, c.view(), m.specOf(c))
	}
	return nil
}

// startedAnyway tells, after a failed start, whether the process ran after
// all: the caller's ctx can end after runc started it, and a process can die
// at once. Either way its exit must be watched.
func (m *Manager) startedAnyway(rt *oci.Runtime, c *ctr) bool {
	if _, exited, _ := rt.ExitStatus(c.rec.ID); exited {
		m.watch(rt, c)
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := rt.State(ctx, c.rec.ID)
	return err == nil && st.Status != oci.StatusCreated && st.Status != oci.StatusCreating
}

// watch records the container's exit when it comes, in a goroutine that
// ends with the Manager.
func (m *Manager) watch(rt *oci.Runtime, c *ctr) {
	c.mu.Lock()
	if c.watched {
		c.mu.Unlock()
		return
	}
	c.watched = true
	if c.exited == nil {
		c.exited = make(chan struct{})
	}
	c.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		exit, err := rt.WaitExit(m.ctx, c.rec.ID)
		switch {
		case err == nil:
		case errors.Is(err, errdefs.ErrNotFound):
			exit = oci.Exit{Code: 255, FinishedAt: time.Now(), Message: "container state lost"}
		default: // the Manager or the runtime is closing; New re-arms
			return
		}
		m.recordExit(c, exit)
		m.reap(rt, c)
	}()
}

// reap deletes an exited container from the runtime right away (the part
// of Remove that does not need the exit record, oci.DeleteExited), so
// RemoveContainer and RemovePodSandbox do not wait for a runtime command.
// It runs after Stop has been answered. A Remove that began first does it
// all itself; one that comes while reap runs waits for it (reapedWait). A
// crash in between leaves an exited container whose Remove runs the full
// delete, which accepts a runtime that no longer knows the container.
func (m *Manager) reap(rt *oci.Runtime, c *ctr) {
	c.mu.Lock()
	if c.reaping != nil || c.rec.State != Exited {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.reaping = done
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(m.ctx, undoTimeout)
	err := rt.DeleteExited(ctx, c.rec.ID)
	cancel()
	if err != nil {
		m.log.Warn("delete exited container from the runtime (Remove retries)", "id", c.rec.ID, "err", err)
	}
	c.mu.Lock()
	c.reaped = err == nil
	c.mu.Unlock()
	close(done)
}

// reapedWait waits for a reap in flight and tells whether the container is
// already deleted from the runtime. Callers have recorded Removing (under
// mu), so no reap starts after this looks.
func (c *ctr) reapedWait(ctx context.Context) bool {
	c.mu.Lock()
	done := c.reaping
	c.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
	case <-ctx.Done():
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reaped
}

func (m *Manager) recordExit(c *ctr, exit oci.Exit) {
	reason := ReasonError
	c.mu.Lock()
	evicted := c.evicted
	c.mu.Unlock()
	switch {
	case evicted != "":
		reason, exit.Message = ReasonEvicted, evicted
	case exit.OOMKilled:
		reason = ReasonOOMKilled
	case exit.Code == 0:
		reason = ReasonCompleted
	}
	if exit.FinishedAt.IsZero() {
		exit.FinishedAt = time.Now()
	}
	changed := false
	err := m.update(c, func(r *record) {
		if r.State == Exited || r.State == Removing {
			return
		}
		changed = true
		if r.StartedAt.IsZero() {
			r.StartedAt = exit.FinishedAt
		}
		// The exit file's mtime comes from the kernel's coarse clock, which
		// can lag ours by a tick.
		if exit.FinishedAt.Before(r.StartedAt) {
			exit.FinishedAt = r.StartedAt
		}
		r.State, r.FinishedAt, r.ExitCode = Exited, exit.FinishedAt, int32(exit.Code)
		r.Reason, r.Message = reason, strings.TrimSpace(exit.Message)
	})
	if err != nil {
		m.log.Warn("record exit", "id", c.rec.ID, "err", err)
	}
	if changed {
		m.cfg.Observer.ContainerExited(reason)
		// Before waking Stop and Remove, so STOPPED precedes DELETED.
		m.emit(events.Stopped, c)
		if m.cfg.NRI != nil {
			m.cfg.NRI.Stop(m.ctx, c.view(), m.specOf(c))
		}
	}
	c.mu.Lock()
	if c.exited == nil {
		c.exited = make(chan struct{})
	}
	select {
	case <-c.exited:
	default:
		close(c.exited)
	}
	c.mu.Unlock()
}

// Stop sends the stop signal (the config's, else the image's, else
// SIGTERM), waits up to timeout for the exit, then kills every process of
// the container. Stopping a container that is not running succeeds. Stop
// returns once the exit is recorded, or fails after a bounded wait.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, c); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	return m.stop(ctx, c, timeout)
}

func (m *Manager) stop(ctx context.Context, c *ctr, timeout time.Duration) error {
	if c.state() != Running {
		return nil
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return err
	}
	// A running container nobody watches (its recovery was cut short):
	// the watch judges it, so the wait below ends.
	m.watch(rt, c)
	c.mu.Lock()
	exited := c.exited
	c.mu.Unlock()
	if timeout > 0 {
		sig, err := stopSignal(c.cfg.GetStopSignal(), c.rec.StopSignal)
		if err != nil {
			return err
		}
		if err := rt.Kill(ctx, c.rec.ID, sig, false); err != nil {
			return fmt.Errorf("stop container %s: %w", c.rec.ID, err)
		}
		crashpoint.Hit(crashpoint.StopSignalled)
		if waitExited(ctx, exited, timeout) {
			return nil
		}
	}
	if err := rt.Kill(ctx, c.rec.ID, unix.SIGKILL, true); err != nil {
		return fmt.Errorf("kill container %s: %w", c.rec.ID, err)
	}
	crashpoint.Hit(crashpoint.StopKilled)
	if waitExited(ctx, exited, killWait) {
		return nil
	}
	if ctx.Err() != nil {
		return errdefs.WithKind(errdefs.ErrDeadlineExceeded, fmt.Errorf("stop container %s: %w", c.rec.ID, ctx.Err()))
	}
	return errdefs.New(errdefs.ErrDeadlineExceeded, "container %s did not exit %s after SIGKILL", c.rec.ID, killWait)
}

func waitExited(ctx context.Context, exited <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-exited:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// Remove kills the container if it runs and removes every trace of it but
// its log file, which kubelet removes. Removing an unknown container
// succeeds.
func (m *Manager) Remove(ctx context.Context, id string) error {
	c, err := m.get(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, c); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if c.state() == Removing {
		// A failed earlier Remove: finish it.
		return m.finishRemove(ctx, c)
	}
	if err := m.stop(ctx, c, 0); err != nil {
		return err
	}
	if err := m.updateNote(c, func(r *record) { r.State = Removing }); err != nil {
		if !errdefs.NoSpace(err) {
			return err
		}
		// A full disk: removing is what frees it (kubelet evicts under
		// disk pressure), so it must not wait for space to note its intent.
		// Memory says Removing; undo removes the record before the rest of
		// the directory, so a crash leaves either an exited container to
		// remove again or an orphan directory that start-up removes.
		m.log.Warn("disk full: removing the container without noting it first", "id", id, "err", err)
	}
	crashpoint.Hit(crashpoint.RemoveRecorded)
	return m.finishRemove(ctx, c)
}

func (m *Manager) finishRemove(ctx context.Context, c *ctr) error {
	rt, _ := m.runtime(c.rec.Handler)
	if err := m.undo(ctx, rt, c); err != nil {
		return fmt.Errorf("remove container %s: %w", c.rec.ID, err)
	}
	m.mu.Lock()
	delete(m.containers, c.rec.ID)
	m.mu.Unlock()
	m.changed()
	m.releaseName(nameKey(c.rec.SandboxID, c.rec.Name), c.rec.ID)
	m.emit(events.Deleted, c)
	if m.cfg.NRI != nil {
		s := m.specOf(c)
		m.cfg.NRI.Stop(ctx, c.view(), s) // a container that never ran
		m.cfg.NRI.Remove(ctx, c.view(), s)
	}
	return nil
}
