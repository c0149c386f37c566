package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/netns"
)

// Stop stops the pod's containers (Config.StopContainers), detaches it from
// the network and releases its namespaces and /dev/shm. The record stays,
// NOTREADY. Stop is idempotent, and succeeds when the namespaces or the CNI
// state are already gone.
func (m *Manager) Stop(ctx context.Context, id string) error {
	p, err := m.lookup(id)
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, p); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return nil
	}
	return m.stop(ctx, p)
}

func (m *Manager) stop(ctx context.Context, p *pod) error {
	if m.cfg.StopContainers != nil {
		if err := m.cfg.StopContainers(ctx, p.id); err != nil {
			return fmt.Errorf("stop containers of pod %s: %w", p.id, err)
		}
		crashpoint.Hit(crashpoint.StopPodContainers)
	}
	if p.rec.State == Ready && m.cfg.NRI != nil {
		m.cfg.NRI.StopPodSandbox(ctx, p.snapshot())
	}
	return m.release(ctx, p)
}

// release marks p NOTREADY (the intent) and tears it down.
func (m *Manager) release(ctx context.Context, p *pod) error {
	if p.rec.State != NotReady {
		p.rec.State = NotReady
		if err := m.saveTeardown(p); err != nil {
			return err
		}
		crashpoint.Hit(crashpoint.StopPodNotReady)
		m.emit(events.Stopped, p)
	}
	return m.teardown(ctx, p)
}

// saveTeardown saves a record on the way down (stop, removal). A full disk
// does not stop the teardown: kubelet evicts pods under disk pressure by
// stopping and removing them, which frees space, so they must not wait for
// it. Memory keeps the change and the next save carries it; a crash before
// that leaves an older record whose READY pod has lost its namespaces, which
// start-up stops again (CNI DEL and the init's stop are idempotent).
// For the same reason the record is noted, not fsynced: after a power loss
// the older durable record (READY, or NOTREADY still attached) makes
// start-up run the same idempotent teardown again.
func (m *Manager) saveTeardown(p *pod) error {
	err := m.note(p)
	if err != nil && errdefs.NoSpace(err) {
		slog.Warn("disk full: tearing the pod down without recording the step", "pod", p.id, "err", err)
		return nil
	}
	return err
}

// Remove stops the pod and removes every trace of it. An unknown ID is not
// an error: the pod is already gone.
func (m *Manager) Remove(ctx context.Context, id string) error {
	p, err := m.lookup(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, p); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return nil
	}
	if err := m.stop(ctx, p); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RemovePodStopped)
	if err := m.erase(p); err != nil {
		return err
	}
	m.forget(p)
	m.emit(events.Deleted, p)
	if m.cfg.NRI != nil {
		m.cfg.NRI.RemovePodSandbox(ctx, p.snapshot())
	}
	return nil
}

// teardown undoes every side effect of Run except files: the init process
// and CNI (each while the record says it may be in place), then the
// namespace pins and the shm mount, each of which accepts being already
// gone. Callers hold p.mu.
func (m *Manager) teardown(ctx context.Context, p *pod) error {
	// The init first: nothing may run in the pod when its network goes.
	if err := m.stopInit(ctx, p); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.StopPodInit)
	var errs []error
	if p.rec.NetAttach {
		if m.cfg.CNI == nil {
			errs = append(errs, errdefs.WithKind(errdefs.ErrFailedPrecondition,
				fmt.Errorf("pod %s is attached to a network but %w to detach it", p.id, errNoNetwork)))
		} else if err := m.cfg.CNI.Teardown(ctx, m.podNet(p, false)); err != nil {
			errs = append(errs, err)
		} else {
			crashpoint.Hit(crashpoint.StopPodNetwork)
			p.rec.NetAttach = false
			if err := m.saveTeardown(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := unmountAll(filepath.Join(m.podDir(p.id), "shm")); err != nil {
		errs = append(errs, err)
	}
	if err := netns.Unpin(m.nsDir(p.id)); err != nil {
		errs = append(errs, err)
	}
	if err := m.unpinUserns(p.id); err != nil {
		errs = append(errs, err)
	}
	crashpoint.Hit(crashpoint.StopPodUnpinned)
	return errors.Join(errs...)
}
