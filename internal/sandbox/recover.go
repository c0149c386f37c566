package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cradle-runtime/cradle/internal/bounded"
	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
)

// recoveryWorkers bounds how many pods are reconciled at once: each may run
// CNI plugins and the OCI runtime.
const recoveryWorkers = 8

// recover loads the records into memory and leaves the work that makes the
// host match them to the background, so New returns (and the daemon serves)
// as soon as the records are read:
//   - a pod that was being created is undone (kubelet retries the Run);
//   - a READY pod whose namespaces or shm mount are gone
//     (a reboot, an operator's cleanup) is stopped: it becomes NOTREADY and
//     its leftovers, such as the CNI lease, are released;
//   - a NOTREADY pod gets an interrupted Stop finished;
//   - pod dirs and CNI attachments without a record (a lost record) are
//     torn down.
//
// Pods are listed at once with their recorded state. An operation on a pod
// still being reconciled waits for it within the caller's deadline, then
// fails with Unavailable (waitRecovered). Failures to clean up one pod are
// logged and leave that pod NOTREADY, so Stop and Remove can retry; they
// touch no other pod.
func (m *Manager) recover(ctx context.Context) error {
	entries, err := os.ReadDir(m.recDir)
	if err != nil {
		return fmt.Errorf("sandbox: read records: %w", err)
	}
	var attached []string
	if m.cfg.CNI != nil {
		if attached, err = m.cfg.CNI.Attached(); err != nil {
			slog.Warn("sandbox recovery: cannot read CNI attachments", "err", err)
		}
	}
	var jobs []func(context.Context)
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(m.recDir, name)
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(path) // an interrupted atomic write
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		p, err := loadRecord(path)
		if err != nil {
			// Kept aside rather than deleted: it may name an attachment an
			// operator has to release by hand.
			slog.Error("sandbox recovery: unreadable pod record set aside", "path", path, "setAside", path+".corrupt", "err", err)
			os.Rename(path, path+".corrupt")
			m.cfg.Observer.Recovered(recoveredKind, "set_aside")
			continue
		}
		p.done, p.recovering = make(chan struct{}), true
		m.publish(p)
		m.byID[p.id], m.names[p.name] = p, p
		jobs = append(jobs, func(ctx context.Context) { m.recoverPod(ctx, p) })
	}
	jobs = append(jobs, m.orphanJobs(attached)...)
	bounded.Go(ctx, &m.recovery, recoveryWorkers, 0, jobs) // each job bounds its work (undoTimeout)
	return nil
}

// WaitRecovered blocks until the reconciliation New started has ended.
func (m *Manager) WaitRecovered() { m.recovery.Wait() }

func (m *Manager) recoverPod(ctx context.Context, p *pod) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	defer close(p.done)
	log := slog.With("pod", p.id, "name", p.name)
	result := "ok"
	switch p.rec.State {
	case Creating:
		log.Info("sandbox recovery: undoing an interrupted RunPodSandbox")
		if err := m.undoCreate(p, errInterrupted); err != errInterrupted {
			log.Error("sandbox recovery: undo failed; the pod stays NOTREADY", "err", err)
			result = "failed"
		}
	case Ready:
		if why := m.broken(p); why != "" {
			log.Warn("sandbox recovery: pod lost its resources; stopping it", "reason", why)
			// Not stop: its containers are the container manager's to
			// recover.
			if err := m.release(ctx, p); err != nil {
				log.Error("sandbox recovery: stop failed", "err", err)
				result = "failed"
			}
		}
	default:
		if err := m.teardown(ctx, p); err != nil {
			log.Error("sandbox recovery: finishing an interrupted stop failed", "err", err)
			result = "failed"
		}
	}
	m.cfg.Observer.Recovered(recoveredKind, result)
}

// recoveredKind is the kind label of cradle_recovered_objects_total.
const recoveredKind = "pod"

// orphanResult is the recovery result of an orphan's teardown.
func orphanResult(err error) string {
	if err != nil {
		return "failed"
	}
	return "orphan_removed"
}

// waitRecovered lets an operation on p wait, within ctx, for the Run that
// creates it or for its reconciliation after a restart; past ctx it fails:
// Unavailable for a pod in recovery, which clients retry.
func waitRecovered(ctx context.Context, p *pod) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	if p.recovering {
		return errdefs.New(errdefs.ErrUnavailable, "pod sandbox %s is still being recovered after a daemon restart; retry", p.id)
	}
	return errdefs.WithKind(errdefs.ErrDeadlineExceeded, fmt.Errorf("pod sandbox %s is still being created: %w", p.id, ctx.Err()))
}

// errInterrupted is the cause handed to undoCreate in recovery; getting it
// back unchanged means the undo succeeded.
var errInterrupted = errors.New("RunPodSandbox interrupted by a restart")

// broken says what a READY pod is missing, "" when nothing.
func (m *Manager) broken(p *pod) string {
	v := p.view.Load()
	for _, ns := range []string{v.NetNS, v.UTSNS, v.IPCNS, v.UserNS} {
		if ns != "" && !netns.Exists(ns) {
			return ns + " is not a namespace any more"
		}
	}
	if v.Shm != "" {
		if mnt, err := isMountPoint(v.Shm); err != nil || !mnt {
			return v.Shm + " is not mounted"
		}
	}
	// A missing CNI cache entry alone is not a reason: the interface and
	// address live in the netns checked above, and Teardown falls back to
	// the current config.
	return ""
}

// orphanJobs returns the teardown of each pod dir and CNI attachment that
// no record names. Callers have loaded every record.
func (m *Manager) orphanJobs(attached []string) []func(context.Context) {
	var jobs []func(context.Context)
	entries, err := os.ReadDir(m.podsDir)
	if err != nil {
		slog.Warn("sandbox recovery: cannot read pod dirs", "err", err)
	}
	for _, e := range entries {
		id := e.Name()
		if _, ok := m.byID[id]; ok {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) {
			slog.Warn("sandbox recovery: removing a pod dir without a record", "pod", id)
			dir := m.podDir(id)
			var err error
			if _, serr := os.Stat(m.initBundle(id)); serr == nil && m.cfg.Init != nil {
				// The init first: nothing may run in the pod when its
				// namespaces go.
				ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
				err = m.cfg.Init.StopOrphan(ictx, id)
				cancel()
			}
			if err == nil {
				err = errors.Join(unmountAll(filepath.Join(dir, "shm")), netns.Unpin(filepath.Join(dir, "ns")), m.unpinUserns(id))
			}
			if err == nil {
				err = os.RemoveAll(dir)
			}
			if err != nil {
				slog.Error("sandbox recovery: orphan pod dir", "pod", id, "err", err)
			}
			m.cfg.Observer.Recovered(recoveredKind, orphanResult(err))
		})
	}
	for _, id := range attached {
		if _, ok := m.byID[id]; ok {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
			defer cancel()
			slog.Warn("sandbox recovery: detaching a CNI attachment without a record", "pod", id)
			err := m.cfg.CNI.Teardown(ctx, cni.PodNet{ID: id})
			if err != nil {
				slog.Error("sandbox recovery: orphan CNI attachment", "pod", id, "err", err)
			}
			m.cfg.Observer.Recovered(recoveredKind, orphanResult(err))
		})
	}
	return jobs
}
