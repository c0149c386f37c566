package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// monitor is one container's conmon, watched until it exits.
type monitor struct {
	id    string
	watch *pidWatch
	// deleted is closed by Delete: the container is going away, so a dying
	// conmon must not be mistaken for a lost monitor.
	deleted     chan struct{}
	deletedOnce sync.Once
}

// superviseTimeout bounds the runtime calls a supervisor makes on its own.
var superviseTimeout = 30 * time.Second

// addMonitor starts supervising a committed container's conmon. The
// supervisor reaps conmon when it exits and adopts the container when conmon
// died before it.
func (r *Runtime) addMonitor(id string, w *pidWatch) {
	m := &monitor{id: id, watch: w, deleted: make(chan struct{})}
	if !r.track(m, func() { r.supervise(m) }) {
		w.close()
	}
}

// track registers m and runs fn for it in a goroutine that Close waits for;
// false when the Runtime is closed.
func (r *Runtime) track(m *monitor, fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trackLocked(m, fn)
}

// trackLocked is track for callers holding r.mu.
func (r *Runtime) trackLocked(m *monitor, fn func()) bool {
	if r.closed {
		return false
	}
	r.monitors[m.id] = m
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
		r.mu.Lock()
		if r.monitors[m.id] == m {
			delete(r.monitors, m.id)
		}
		r.mu.Unlock()
	}()
	return true
}

// Monitors is the number of conmon processes being supervised (a container
// whose conmon is gone and that the daemon adopted is not counted).
func (r *Runtime) Monitors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.monitors {
		if m.watch != nil {
			n++
		}
	}
	return n
}

func (r *Runtime) monitorOf(id string) *monitor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.monitors[id]
}

func (r *Runtime) supervise(m *monitor) {
	<-m.watch.done
	if !m.watch.exitedProcess() {
		return // watch closed by Close: conmon lives on
	}
	select {
	case <-m.deleted:
		return
	default:
	}
	if _, exited, _ := r.readExit(m.id); exited {
		return // the normal end: conmon recorded the exit, then exited
	}
	r.log.Warn("conmon exited before its container; adopting the container", "container", m.id, "conmonPid", m.watch.pid)
	r.adopt(m)
}

// adopt follows a container whose conmon is gone. As a subreaper the daemon
// inherits the container's init, so it can usually reap it and record the
// real exit code; otherwise the code is unknown (255).
func (r *Runtime) adopt(m *monitor) {
	ctx, cancel := context.WithTimeout(context.Background(), superviseTimeout)
	st, err := r.State(ctx, m.id)
	cancel()
	const lost = "the container's monitor (conmon) exited first; its output after that was lost"
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		// The runtime never created it (a crash before conmon ran it) or it
		// was deleted: no process of it can be left to wait for.
		r.recordLost(m.id, unknownExitCode, "the runtime has no state for the container: it never started or was deleted")
		return
	case err != nil:
		// The runtime cannot tell (it hangs or fails): judge from the pid
		// it reported at create, which only /proc can vouch for.
		r.log.Warn("runtime state unavailable; judging the container from its recorded pid", "container", m.id, "err", err)
		st = State{Status: StatusStopped}
		if rec, rerr := r.readRecord(m.id); rerr == nil && rec.Pid > 0 && processAlive(rec.Pid) {
			st = State{Status: StatusRunning, Pid: rec.Pid}
		}
	}
	pid := st.Pid
	if st.Status == StatusStopped || pid <= 0 {
		// It may have died an instant ago as our child: then its zombie
		// still holds the exit status.
		rec, err := r.readRecord(m.id)
		if err != nil || !isZombieChild(rec.Pid) {
			r.recordLost(m.id, unknownExitCode, lost+" and its exit status is unknown")
			return
		}
		pid = rec.Pid
	}
	cw, err := watchPid(pid)
	if err != nil {
		r.recordLost(m.id, unknownExitCode, lost+" and its exit status is unknown")
		return
	}
	defer cw.close()
	select {
	case <-cw.done:
	case <-m.deleted:
		return
	case <-r.stop:
		return
	}
	if code, ok := cw.exitStatus(); ok {
		r.recordLost(m.id, code, lost)
		return
	}
	r.recordLost(m.id, unknownExitCode, lost+" and its exit status is unknown")
}

func (r *Runtime) recordLost(id string, code int, msg string) {
	if _, err := os.Stat(r.ctrDir(id)); err != nil {
		return // deleted meanwhile
	}
	if _, exited, _ := r.readExit(id); exited {
		return // conmon's own record, with the real code, came first
	}
	if err := r.recordExit(id, code, msg); err != nil {
		r.log.Error("record exit of adopted container", "container", id, "err", err)
	}
}

// superviseOrphan makes sure an exit will be recorded for a container that
// nobody watches: no conmon is tracked for it (its record was never
// written, conmon died, or this daemon restarted after both), so no exit
// file would ever come. It adopts the container, which judges it from the
// runtime's state, pidfds and /proc. Waiters call it before they block.
func (r *Runtime) superviseOrphan(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.monitors[id] != nil {
		return
	}
	if _, err := os.Stat(r.ctrDir(id)); err != nil {
		return // deleted: waiters get ErrNotFound
	}
	m := &monitor{id: id, deleted: make(chan struct{})}
	r.trackLocked(m, func() { r.adopt(m) })
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// recoverAll re-arms the watch of every container's conmon after a restart.
func (r *Runtime) recoverAll() {
	ids, err := r.List()
	if err != nil {
		r.log.Error("recover monitors", "err", err)
		return
	}
	for _, id := range ids {
		if err := r.recoverOne(id); err != nil {
			r.log.Warn("recover monitor", "container", id, "err", err)
		}
	}
}

func (r *Runtime) recoverOne(id string) error {
	rec, err := r.readRecord(id)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil // never committed: List shows it, the daemon deletes it
	}
	if err != nil {
		return err
	}
	// Check the pid's identity with a pidfd open but no watch yet: a
	// watch would reap a stranger that happens to be our child.
	fd, err := unix.PidfdOpen(rec.MonitorPid, unix.PIDFD_NONBLOCK)
	if err == nil {
		if r.isConmonOf(rec.MonitorPid, id) {
			r.addMonitor(id, newPidWatch(fd, rec.MonitorPid))
			return nil
		}
		unix.Close(fd)
	}
	if _, exited, _ := r.readExit(id); exited {
		return nil
	}
	// conmon died while the daemon was down, without recording an exit.
	m := &monitor{id: id, deleted: make(chan struct{})}
	r.track(m, func() {
		r.log.Warn("conmon is gone and no exit was recorded; adopting the container", "container", id)
		r.adopt(m)
	})
	return nil
}

// isConmonOf checks that pid still is the conmon of container id and not a
// process that reused the pid: its command line names the container, or,
// for a zombie (empty command line), its name is conmon's and we are its
// parent, so reaping it is right.
func (r *Runtime) isConmonOf(pid int, id string) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	name := filepath.Base(r.cfg.ConmonPath)
	if len(cmdline) == 0 {
		st, err := readProcStat(pid)
		return err == nil && strings.HasPrefix(name, st.comm) && st.comm != "" && st.ppid == os.Getpid()
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	if string(args[0]) != r.cfg.ConmonPath && filepath.Base(string(args[0])) != name {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if a := string(args[i]); (a == "-c" || a == "--cid") && string(args[i+1]) == id {
			return true
		}
	}
	return false
}

// isZombieChild reports whether pid is an unreaped child of this process;
// only we can reap it, so its pid cannot have been reused.
func isZombieChild(pid int) bool {
	st, err := readProcStat(pid)
	return err == nil && st.state == 'Z' && st.ppid == os.Getpid()
}

// procStat is the part of /proc/<pid>/stat this package reads.
type procStat struct {
	comm  string
	state byte
	ppid  int
	pgrp  int
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(data))
}

// parseProcStat parses "pid (comm) state ppid pgrp ...". comm may hold
// spaces and parentheses, so it ends at the last ')'.
func parseProcStat(s string) (procStat, error) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil {
		return procStat{}, fmt.Errorf("malformed stat %q: %w", s, err)
	}
	return procStat{comm: s[open+1 : end], state: f[0][0], ppid: ppid, pgrp: pgrp}, nil
}

// MonitorPid returns the pid of a container's conmon (for accounting), 0
// when it has exited.
func (r *Runtime) MonitorPid(id string) (int, error) {
	if _, err := r.readRecord(id); err != nil {
		return 0, err
	}
	if m := r.monitorOf(id); m != nil && m.watch != nil && !m.watch.exitedProcess() {
		return m.watch.pid, nil
	}
	return 0, nil
}

// InitPid is the pid of the container's init as the runtime reported it at
// create; ErrNotFound when the container has no state here. It says nothing
// of whether that process still runs: callers know the container's state.
func (r *Runtime) InitPid(id string) (int, error) {
	rec, err := r.readRecord(id)
	if err != nil {
		return 0, err
	}
	return rec.Pid, nil
}

// stopMonitor is Delete's part: conmon of a deleted container has nothing
// left to do. Give it a moment to record the exit and drain the logs, then
// kill it, and wait until it is reaped so no zombie stays behind.
func (r *Runtime) stopMonitor(ctx context.Context, id string) {
	m := r.monitorOf(id)
	if m == nil {
		return
	}
	m.deletedOnce.Do(func() { close(m.deleted) })
	if m.watch == nil {
		return
	}
	grace := time.NewTimer(monitorExitGrace)
	defer grace.Stop()
	select {
	case <-m.watch.done:
		return
	case <-grace.C:
	case <-ctx.Done():
	}
	if err := m.watch.signal(unix.SIGKILL); err != nil {
		r.log.Warn("kill conmon of deleted container", "container", id, "err", err)
	}
	select {
	case <-m.watch.done:
	case <-ctx.Done():
	}
}

// monitorExitGrace is how long Delete lets conmon finish after the container
// is gone (it drains output and fsyncs the log).
const monitorExitGrace = 5 * time.Second
