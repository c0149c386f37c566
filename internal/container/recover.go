package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// recover loads every record and reconciles it with the runtime and the
// kernel. Problems with one container are logged and do not stop the rest.
func (m *Manager) recover() error {
	ents, err := os.ReadDir(recordRoot(m.cfg.Root))
	if err != nil {
		return fmt.Errorf("container manager: %w", err)
	}
	known := map[string]bool{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		known[id] = true
		rec, err := load(m.dir(id))
		if err != nil {
			// No record: a crash between mkdir and the intent record, or
			// in the middle of removing the directory.
			if !errors.Is(err, os.ErrNotExist) {
				m.log.Error("unreadable container record; removing the container", "id", id, "err", err)
			}
			m.cleanOrphan(id)
			continue
		}
		c := &ctr{rec: rec}
		if c.cfg, err = rec.config(); err != nil {
			m.log.Error("unreadable container config; removing the container", "id", id, "err", err)
			m.cleanOrphan(id)
			continue
		}
		if rec.State == Creating || rec.State == Removing {
			rt, _ := m.runtime(rec.Handler)
			if err := m.undo(rt, c); err != nil {
				m.log.Warn("undo interrupted container create or remove", "id", id, "state", rec.State, "err", err)
			} else if rec.State == Removing {
				m.emit(events.Deleted, c) // a Remove the crash cut off
			}
			continue
		}
		m.restore(c)
	}
	// Bundles without a record: the record was removed first.
	states, err := os.ReadDir(stateRoot(m.cfg.State))
	if err != nil {
		return fmt.Errorf("container manager: %w", err)
	}
	for _, e := range states {
		if e.IsDir() && !known[e.Name()] {
			m.cleanOrphan(e.Name())
		}
	}
	return nil
}

// cleanOrphan removes a container that has no usable record from every
// runtime (the handler is unknown), the kernel and the disk.
func (m *Manager) cleanOrphan(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for h, rt := range m.cfg.Runtimes {
		if err := rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			m.log.Warn("delete orphan container", "id", id, "handler", h, "err", err)
		}
	}
	if err := m.undo(nil, &ctr{rec: record{ID: id}}); err != nil {
		m.log.Warn("remove orphan container", "id", id, "err", err)
	}
}

// restore brings a kept container back into memory with the truth about
// its process.
func (m *Manager) restore(c *ctr) {
	id := c.rec.ID
	if err := m.acquire(c); err != nil {
		// Its mount still pins the files; only a new mount is impossible.
		m.log.Warn("container's image layers are gone", "id", id, "err", err)
	}
	if err := m.acquireImageVolumes(c); err != nil {
		m.log.Warn("container's image volume layers are gone", "id", id, "err", err)
	}
	m.mu.Lock()
	m.containers[id] = c
	m.names[nameKey(c.rec.SandboxID, c.rec.Name)] = doneReservation(c.rec.ConfigHash, id)
	m.mu.Unlock()
	if c.rec.State == Exited {
		return
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		m.recordExit(c, oci.Exit{Code: 255, Message: err.Error()})
		return
	}
	exit, exited, err := rt.ExitStatus(id)
	switch {
	case exited:
		m.recordExit(c, exit)
		return
	case err != nil:
		// Its runtime state is gone: the state dir was wiped (a reboot).
		m.recordExit(c, oci.Exit{Code: 255, Message: "container state lost (host rebooted?): " + err.Error()})
		return
	}
	if err := m.ensureRootfs(c); err != nil {
		m.log.Warn("remount container rootfs", "id", id, "err", err)
	}
	if _, err := m.mountImageVolumes(c); err != nil {
		m.log.Warn("remount container image volumes", "id", id, "err", err)
	}
	c.exited = make(chan struct{})
	if c.rec.State == Created {
		// A start the crash cut off before its record.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := rt.State(ctx, id)
		cancel()
		if err != nil || st.Status == oci.StatusCreated {
			return
		}
		if err := m.update(c, func(r *record) { r.State, r.StartedAt = Running, time.Now() }); err != nil {
			m.log.Warn("record start", "id", id, "err", err)
		}
	}
	m.watch(rt, c)
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
