package oci

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// A container's init is signalled through a pidfd opened when Create got
// its pid, instead of by `runc kill`: that saves a runtime process on every
// StopContainer (runc does the same kill(2) after reading its state). The
// pidfd cannot reach another process if the init has exited and its pid
// was reused. Containers created before a restart of the daemon have no
// pidfd and are signalled through the runtime, as are `--all` kills (the
// runtime walks the cgroup).

// openInit keeps a pidfd of a created container's init. The init is then
// blocked in the runtime's exec FIFO, waiting for start, so the pid is
// still the container's. Without a pidfd, Kill uses the runtime.
//
// Not on a sandboxed runtime: the pid it reports is a host process of the
// sandbox (gVisor's sandbox, a VM's shim, or the relay's holder), not the
// workload, which only the runtime can signal.
func (r *Runtime) openInit(id string, pid int) {
	if r.cfg.Sandboxed {
		return
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		unix.Close(fd)
		return
	}
	if old, ok := r.inits[id]; ok {
		unix.Close(old)
	}
	r.inits[id] = fd
}

// signalInit sends sig to the container's init through its pidfd; false
// when there is none, and the runtime must do it. An init that has exited
// has nothing to signal: success, as Kill promises.
func (r *Runtime) signalInit(id string, sig syscall.Signal) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock() // Close and closeInit close the fd under mu
	fd, ok := r.inits[id]
	if !ok {
		return false, nil
	}
	err := unix.PidfdSendSignal(fd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return true, nil
	}
	return true, err
}

// closeInit drops the pidfd of a container being deleted.
func (r *Runtime) closeInit(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fd, ok := r.inits[id]; ok {
		unix.Close(fd)
		delete(r.inits, id)
	}
}

func (r *Runtime) closeInitsLocked() {
	for id, fd := range r.inits {
		unix.Close(fd)
		delete(r.inits, id)
	}
}
