package oci

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// killProcessTree kills root, its process group and every descendant, and
// returns watches of the descendants. Root is given as a watch, so its
// identity is pinned by a pidfd. The others are frozen with SIGSTOP first,
// rescanning until no new process shows up, so nothing can fork its way out
// between the scan and the kill; while frozen they cannot exit, so their
// pids cannot be reused: the pidfds opened then refer to exactly these
// processes, and reapKilled can reap those that end up our children without
// any risk of collecting a stranger.
func killProcessTree(root *pidWatch) []*pidWatch {
	_ = root.signal(unix.SIGSTOP)
	group := false
	if st, err := readProcStat(root.pid); err == nil && st.pgrp == root.pid {
		// runc makes the exec'd process a session (and group) leader, as
		// conmon makes itself; the group also holds already orphaned children.
		group = true
		_ = unix.Kill(-root.pid, unix.SIGSTOP)
	}
	frozen := map[int]bool{root.pid: true}
	var watches []*pidWatch
	for range 16 {
		grew := false
		for _, pid := range descendants(root.pid) {
			if frozen[pid] {
				continue
			}
			frozen[pid] = true
			grew = true
			if unix.Kill(pid, unix.SIGSTOP) != nil {
				continue
			}
			if w, err := watchPid(pid); err == nil {
				watches = append(watches, w)
			}
		}
		if !grew {
			break
		}
	}
	_ = root.signal(unix.SIGKILL)
	if group {
		_ = unix.Kill(-root.pid, unix.SIGKILL)
	}
	for _, w := range watches {
		_ = w.signal(unix.SIGKILL)
	}
	return watches
}

// reapKilled waits, up to timeout, until every killed process is reaped and
// releases the watches. Processes of a killed tree die together: a child
// often becomes a zombie while its parent still lives, and is re-parented
// to us (the subreaper) only when that parent dies unreaped a moment later,
// so this polls until each one is reaped by us or by its parent.
func reapKilled(watches []*pidWatch, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; len(watches) > 0; delay = min(2*delay, 50*time.Millisecond) {
		pending := watches[:0]
		for _, w := range watches {
			if w.settle() {
				w.close()
			} else {
				pending = append(pending, w)
			}
		}
		watches = pending
		if len(watches) > 0 && time.Now().After(deadline) {
			for _, w := range watches {
				w.close()
			}
			return
		}
		time.Sleep(delay)
	}
}

// descendants returns root and all processes below it, from one scan of /proc.
func descendants(root int) []int {
	children := map[int][]int{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{root}
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
