// Package proctree kills a command that outlived its deadline together with
// everything it started, and reaps what that leaves to the caller.
//
// cradle's daemon is a child subreaper: when a runtime wrapper script or a
// CNI plugin is killed, its children are re-parented to the daemon, and a
// daemon that never calls wait(-1) (it must not steal exec.Cmd statuses)
// would keep them as zombies forever. Kill pins each of them with a pidfd
// while they are frozen, so the pid cannot be reused, and reaps exactly
// those processes with waitid(P_PIDFD) once they are the daemon's children.
package proctree

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ReapTimeout bounds the background reaping of one killed tree.
const ReapTimeout = time.Minute

// Kill kills p, which must be the caller's child and not yet waited for
// (its exec.Cmd reaps it), the process group p leads, and every
// descendant. Run the command with Setpgid so that a child it orphaned
// stays findable through the group. Descendants that end up children of
// the caller are reaped in the background.
func Kill(p *os.Process) error {
	pid := p.Pid
	_ = p.Signal(unix.SIGSTOP)
	_ = unix.Kill(-pid, unix.SIGSTOP)
	frozen := map[int]bool{pid: true}
	var pinned []int // pidfds
	for range 16 {
		grew := false
		for _, q := range members(pid) {
			if frozen[q] {
				continue
			}
			frozen[q] = true
			grew = true
			if unix.Kill(q, unix.SIGSTOP) != nil {
				continue
			}
			if fd, err := unix.PidfdOpen(q, 0); err == nil {
				pinned = append(pinned, fd)
			}
		}
		if !grew {
			break
		}
	}
	err := p.Signal(unix.SIGKILL)
	_ = unix.Kill(-pid, unix.SIGKILL)
	for _, fd := range pinned {
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
	if len(pinned) > 0 {
		go reap(pinned, ReapTimeout)
	}
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	return err
}

// reap polls until every pinned process is gone: reaped by us once it is
// our child, or by its own parent. Then it closes the pidfds.
func reap(fds []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; len(fds) > 0; delay = min(2*delay, 50*time.Millisecond) {
		pending := fds[:0]
		for _, fd := range fds {
			if settled(fd) {
				unix.Close(fd)
			} else {
				pending = append(pending, fd)
			}
		}
		fds = pending
		if len(fds) > 0 && time.Now().After(deadline) {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return
		}
		time.Sleep(delay)
	}
}

// settled reaps the process behind fd if it exited and is our child, and
// reports whether it is gone for good.
func settled(fd int) bool {
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil); err == nil {
		if info.Signo != 0 { // reaped now
			return true
		}
		return false // our child, still running
	}
	// Not our child: gone once a signal no longer reaches it (a zombie
	// still takes signals).
	return errors.Is(unix.PidfdSendSignal(fd, 0, nil, 0), unix.ESRCH)
}

// members returns the processes below root and those of the process group
// root leads (which keeps children orphaned by a member's death), root
// included, from one scan of /proc.
func members(root int) []int {
	children := map[int][]int{}
	var group []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, pgrp, ok := stat(pid)
		if !ok {
			continue // exited meanwhile
		}
		children[ppid] = append(children[ppid], pid)
		if pgrp == root && pid != root {
			group = append(group, pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return append(out, group...)
}

// stat reads the parent and process group of pid from /proc/<pid>/stat.
func stat(pid int) (ppid, pgrp int, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[end+1:]) // state ppid pgrp ...
	if len(f) < 3 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	return ppid, pgrp, err1 == nil && err2 == nil
}
