package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

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
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	// A holder that was killed keeps the lock until the kernel has torn it
	// down (slow for a big process on a loaded host; a child between fork
	// and exec holds a copy too): wait for that, but not for a live daemon.
	for deadline := time.Now().Add(deadHolderWait); errors.Is(err, unix.EWOULDBLOCK) && holderDead(path) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
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

// deadHolderWait bounds the wait for a dead holder's lock to go.
const deadHolderWait = 10 * time.Second

// holderDead tells whether the pid in the lock file names no running
// process: gone, or a zombie whose lock the kernel is still dropping. An
// empty file is a holder in passing (a release truncates before it
// unlocks; a new holder writes its pid right after locking): worth the
// wait too. An unreadable file says nothing, so the holder counts as alive.
func holderDead(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return true
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	// The state follows the command name, which may hold ") ".
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X')
}

func (l *dirLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}
