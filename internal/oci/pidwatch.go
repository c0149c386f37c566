package oci

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pidWatch follows one process through a pidfd parked in Go's netpoller, so
// watching hundreds of processes costs no thread. When the process exits it
// is reaped with waitid(P_PIDFD), which can only ever collect this process:
// exit statuses that other code waits for (exec.Cmd children) are never
// stolen.
type pidWatch struct {
	pid  int
	file *os.File // the pidfd
	done chan struct{}

	mu     sync.Mutex
	status int  // exit code; valid when reaped
	reaped bool // we were its parent and collected it
	gone   bool // the process exited (as opposed to the watch being closed)
	closed bool
}

// watchPid opens a pidfd for pid. ESRCH means the process is gone (and was
// reaped by someone else).
func watchPid(pid int) (*pidWatch, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("watch pid %d: invalid pid", pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return newPidWatch(fd, pid), nil
}

// newPidWatch takes over a non-blocking pidfd of pid.
func newPidWatch(fd, pid int) *pidWatch {
	w := &pidWatch{pid: pid, file: os.NewFile(uintptr(fd), fmt.Sprintf("pidfd:%d", pid)), done: make(chan struct{})}
	go w.wait()
	return w
}

func (w *pidWatch) wait() {
	defer close(w.done)
	rc, err := w.file.SyscallConn()
	if err != nil {
		return
	}
	// Read calls the function once, then again each time the netpoller
	// reports the pidfd readable, until it returns true. The error is
	// ErrClosed after close(); done is closed either way.
	_ = rc.Read(func(fd uintptr) bool {
		if !pidfdReadable(int(fd)) {
			return false
		}
		w.reap(int(fd))
		return true
	})
}

// pidfdReadable reports whether the process behind a pidfd has exited.
func pidfdReadable(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// reap collects the exited process if it is our child; ECHILD (not our
// child) leaves reaped false.
func (w *pidWatch) reap(fd int) {
	w.mu.Lock()
	w.gone = true
	w.mu.Unlock()
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PIDFD, fd, &info, unix.WEXITED|unix.WNOHANG, nil); err != nil {
		return
	}
	pid, code, status := siginfoChild(&info)
	if pid == 0 {
		return
	}
	w.mu.Lock()
	w.reaped, w.status = true, exitCode(code, status)
	w.mu.Unlock()
}

// settle reports whether the exited process is reaped: by us now, if it has
// meanwhile become our child (its parent died without reaping it), or by
// its own parent. False means it is still a zombie of another parent.
func (w *pidWatch) settle() bool {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return true
	}
	settled := true
	_ = rc.Control(func(fd uintptr) {
		if !pidfdReadable(int(fd)) {
			settled = false // still running
			return
		}
		w.reap(int(fd))
		if _, ok := w.exitStatus(); ok {
			return
		}
		// A zombie still takes signals; once reaped, the pidfd gets ESRCH.
		settled = errors.Is(unix.PidfdSendSignal(int(fd), 0, nil, 0), unix.ESRCH)
	})
	return settled
}

// exitedProcess reports whether the process has exited; false also when the
// watch was closed first.
func (w *pidWatch) exitedProcess() bool {
	select {
	case <-w.done:
	default:
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gone
}

// exitStatus returns the exit code when this watch reaped the process.
func (w *pidWatch) exitStatus() (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.reaped
}

// signal sends sig to exactly the watched process, never to a process that
// reused its pid. A process that already exited is not an error.
func (w *pidWatch) signal(sig unix.Signal) error {
	rc, err := w.file.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if errors.Is(serr, unix.ESRCH) {
		return nil
	}
	return serr
}

// close stops watching; a process not yet exited is left alone (and
// unreaped: only close watches of processes the daemon hands over, as on
// shutdown).
func (w *pidWatch) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	w.file.Close()
	<-w.done
}

// Values of si_code for SIGCHLD (asm-generic/siginfo.h).
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// siginfoChild reads si_pid, si_code and si_status of a SIGCHLD siginfo,
// which x/sys/unix keeps opaque. The union after the three leading ints is
// pointer-aligned: si_pid is its first field and si_status follows si_uid.
func siginfoChild(info *unix.Siginfo) (pid, code, status int) {
	base := unsafe.Pointer(info)
	union := (3*4 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)
	pid = int(*(*int32)(unsafe.Add(base, union)))
	status = int(*(*int32)(unsafe.Add(base, union+8)))
	return pid, int(info.Code), status
}

// exitCode folds a waitid result into the shell convention conmon also uses:
// the exit status, or 128+signal.
func exitCode(code, status int) int {
	switch code {
	case cldExited:
		return status
	case cldKilled, cldDumped:
		return 128 + status
	}
	return unknownExitCode
}

// unknownExitCode is recorded when a container's exit status was lost.
const unknownExitCode = 255
