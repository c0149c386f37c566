package oci

import (
	"context"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// killStrayMonitors kills every conmon of container id that no record names:
// one a daemon started just before it was killed, which went on by itself
// (its fork, its runtime create, its --persist-dir) while the next daemon
// undid the create. Left alive, it would recreate the container's state dir
// after Delete removed it. Judged from /proc, each by its command line.
func (r *Runtime) killStrayMonitors(ctx context.Context, id string) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !r.isConmonOf(pid, id) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		// Checked again through the pidfd: the pid cannot be reused now.
		if r.isConmonOf(pid, id) {
			r.log.Warn("killing a conmon no record names", "container", id, "pid", pid)
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			waitPidfd(ctx, fd, 5*time.Second)
		}
		unix.Close(fd)
	}
}

// waitPidfd waits until the process behind fd has exited, at most limit.
func waitPidfd(ctx context.Context, fd int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		if n > 0 || (err != nil && err != unix.EINTR) {
			return
		}
	}
}
