package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// This file is for tools that work on a state dir while no daemon runs
// (cradle check): a Runtime that starts no watcher and re-arms no monitor,
// so reading it changes nothing, and the removal of a container no record
// names, conmon included.

// MonitorCgroupPrefix starts the name of every conmon's cgroup; the rest is
// the container's cgroup name (its ID).
const MonitorCgroupPrefix = monitorCgroupPrefix

// Offline returns a Runtime over cfg that starts nothing. Only the listing
// and deletion calls of this file and Delete are meant for it.
func Offline(cfg Config) *Runtime {
	if cfg.Handler == "" {
		cfg.Handler = filepath.Base(cfg.RuntimePath)
	}
	return &Runtime{cfg: cfg, log: slog.New(slog.DiscardHandler), monitors: map[string]*monitor{}, stop: make(chan struct{})}
}

// RuntimeContainer is one container as the runtime binary lists it.
type RuntimeContainer struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
	Bundle string `json:"bundle"`
}

// RuntimeList lists the containers in the runtime's --root.
func (r *Runtime) RuntimeList(ctx context.Context) ([]RuntimeContainer, error) {
	if _, err := os.Stat(r.cfg.RuntimeRoot); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	out, err := r.run(ctx, nil, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var list []RuntimeContainer
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%s list: %w", r.cfg.Handler, err)
	}
	return list, nil
}

// StateIDs lists the container IDs this package has a ctr/ dir or an exit
// file of.
func (r *Runtime) StateIDs() ([]string, error) {
	seen := map[string]bool{}
	var ids []string
	for _, dir := range []string{r.ctrRoot(), r.exitsDir()} {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if id := e.Name(); validID(id) == nil && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// StaleAttachLinks lists conmon's attach links (paths) that belong to none
// of ids. A link is named after its container's ID, or a hash of a long
// one, so it cannot be traced back: only matched.
func (r *Runtime) StaleAttachLinks(ids []string) ([]string, error) {
	ents, err := os.ReadDir(r.attachDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, id := range ids {
		names[attachName(id)] = true
	}
	var stale []string
	for _, e := range ents {
		if !names[e.Name()] {
			stale = append(stale, filepath.Join(r.attachDir(), e.Name()))
		}
	}
	return stale, nil
}

// RecordedMonitorPid is the pid of id's conmon if it still runs, else 0.
func (r *Runtime) RecordedMonitorPid(id string) int {
	pid := 0
	if rec, err := r.readRecord(id); err == nil {
		pid = rec.MonitorPid
	} else if b, err := os.ReadFile(r.conmonPidFile(id)); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if pid <= 0 || !r.isConmonOf(pid, id) {
		return 0
	}
	return pid
}

// monitorExitWait is how long DeleteOrphan lets conmon record the exit of
// its killed container before it kills conmon too.
const monitorExitWait = 5 * time.Second

// DeleteOrphan removes a container that no record names, with no daemon
// watching it: the runtime kills and deletes the container, conmon is given
// a moment to notice and exit (killed otherwise), then Delete removes the
// monitor cgroup and the files here.
func (r *Runtime) DeleteOrphan(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	if _, err := r.run(ctx, nil, "delete", "--force", id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return err
	}
	if pid := r.RecordedMonitorPid(id); pid > 0 {
		if err := r.endMonitor(pid, id); err != nil {
			return fmt.Errorf("container %s: conmon %d: %w", id, pid, err)
		}
	}
	return r.Delete(ctx, id, true)
}

// endMonitor waits for conmon pid to exit, killing it after monitorExitWait.
// The pidfd pins the process, so the signal cannot reach a stranger.
func (r *Runtime) endMonitor(pid int, id string) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !r.isConmonOf(pid, id) {
		return nil
	}
	if pidfdExited(fd, monitorExitWait) {
		return nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	if !pidfdExited(fd, monitorExitWait) {
		return errors.New("still running after SIGKILL")
	}
	return nil
}

// pidfdExited waits up to timeout for the process behind fd to exit.
func pidfdExited(fd int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds()))
		if err == nil && n > 0 {
			return true
		}
		if (err != nil && !errors.Is(err, unix.EINTR)) || time.Now().After(deadline) {
			return false
		}
	}
}
