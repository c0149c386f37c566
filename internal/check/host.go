package check

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

type mountEntry struct{ point, fstype string }

// readMountinfo lists the mounts of the mount namespace whose mountinfo
// file path is.
func readMountinfo(path string) ([]mountEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	infos, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, 0, len(infos))
	for _, i := range infos {
		out = append(out, mountEntry{point: i.Mountpoint, fstype: i.FSType})
	}
	return out, nil
}

// unmountUnder detaches every mount at or below dir, deepest first, read
// afresh: what a removal of dir must never recurse into.
func unmountUnder(dir string) error {
	mi, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, m := range mi {
		if m.point == dir || below(m.point, dir) {
			points = append(points, m.point)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil &&
			!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// proc is one process as /proc shows it.
type proc struct {
	pid   int
	comm  string
	args  []string
	start uint64 // starttime in clock ticks: with pid, the process's identity
}

func scanProcs(procDir string) ([]proc, error) {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(procDir, pid)
		if err != nil {
			continue // gone meanwhile, or a kernel thread
		}
		out = append(out, p)
	}
	return out, nil
}

func readProc(procDir string, pid int) (proc, error) {
	dir := filepath.Join(procDir, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return proc{}, err
	}
	s := string(stat)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return proc{}, fmt.Errorf("malformed stat of %d", pid)
	}
	// Fields after comm: state is field 3 of stat, starttime field 22.
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return proc{}, fmt.Errorf("short stat of %d", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return proc{}, err
	}
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return proc{}, err
	}
	var args []string
	for _, a := range bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0}) {
		args = append(args, string(a))
	}
	return proc{pid: pid, comm: s[open+1 : end], args: args, start: start}, nil
}

// flagValue returns the value of flag in args ("--f v" or "--f=v").
func flagValue(args []string, names ...string) string {
	for i, a := range args {
		for _, n := range names {
			if a == n && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v
			}
		}
	}
	return ""
}

// killProc kills p if the pid still is that process, and waits until it
// is gone. The pidfd pins the identity checked, so the signal cannot hit a
// process that reused the pid.
func killProc(procDir string, p proc) error {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	now, err := readProc(procDir, p.pid)
	if err != nil || now.start != p.start {
		return nil // exited; the pid is someone else's now
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(max(time.Until(deadline).Milliseconds(), 0)))
		if err == nil && n > 0 {
			return nil
		}
		if (err != nil && !errors.Is(err, unix.EINTR)) || time.Now().After(deadline) {
			return fmt.Errorf("pid %d still running after SIGKILL", p.pid)
		}
	}
}
