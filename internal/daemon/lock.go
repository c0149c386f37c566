package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// dirLock is an flock on <dir>/cradle.lock: one daemon per root and per
// state dir. The kernel drops it when the process dies, so a crashed daemon
// never blocks the next.
type dirLock struct{ f *os.File }

// lockRoot locks the root: a second daemon would serve the same records.
func lockRoot(root string) (*dirLock, error) { return lockDir("root", root) }

// lockState locks the state dir: a daemon on another root but this state dir
// would take the first one's pod and container dirs for orphans of a crash
// and tear them down.
func lockState(state string) (*dirLock, error) { return lockDir("state dir", state) }

func lockDir(what, dir string) (*dirLock, error) {
	path := filepath.Join(dir, "cradle.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if _, perr := strconv.Atoi(who); perr == nil {
				who = "pid " + who
			} else {
				who = "another process"
			}
			return nil, fmt.Errorf("another cradle daemon (%s) is already using %s %s (lock %s held)", who, what, dir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}
