package layer

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// maxCachedDirs bounds the open directory fds kept between entries. Tar
// writers emit a directory's entries together, so a handful covers the
// parent, its siblings and the ancestors that a depth-first walk returns to.
const maxCachedDirs = 16

// dirCache keeps recently used parent directories open, so most entries
// cost one *at syscall on a cached fd instead of a component-by-component
// walk from the root.
//
// A returned fd stays valid until the next call to resolve, put or
// invalidate, which may evict it: callers use one cached fd at a time.
type dirCache struct {
	top    *os.File // the layer root, never evicted
	topfd  int
	topgid int
	ents   []cachedDir
}

type cachedDir struct {
	rel string
	f   *os.File
	fd  int
	gid int // the directory's group when it was cached; -1 if unknown
}

func newDirCache(top *os.File) dirCache {
	fd := int(top.Fd())
	return dirCache{top: top, topfd: fd, topgid: dirGid(fd), ents: make([]cachedDir, 0, maxCachedDirs)}
}

// dirGid is the group of the open directory fd, -1 if fstat fails.
func dirGid(fd int) int {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1
	}
	return int(st.Gid)
}

// gid is the group of the cached directory fd, -1 if fd is not cached. It is
// current: a directory whose owner the layer changes is cached anew (see
// applier.directory).
func (c *dirCache) gid(fd int) int {
	if fd == c.topfd {
		return c.topgid
	}
	for _, e := range c.ents {
		if e.fd == fd {
			return e.gid
		}
	}
	return -1
}

// resolve returns an fd for the directory rel (clean, relative), opening it
// through the root so that symlinks are followed only inside the layer.
// With create, missing directories are made with mode 0755, as Docker does
// for parents a tar does not list.
func (c *dirCache) resolve(a *applier, rel string, create bool) (int, error) {
	if rel == "." {
		return c.topfd, nil
	}
	for i, e := range c.ents {
		if e.rel == rel {
			if i > 0 {
				copy(c.ents[1:i+1], c.ents[:i])
				c.ents[0] = e
			}
			return e.fd, nil
		}
	}
	f, err := a.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err == nil {
		return c.put(rel, f), nil
	}
	// ENOTDIR: perhaps a whiteout of this layer, which a directory replaces.
	if !create || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
		return -1, resolveError(rel, err)
	}
	parent, base := splitName(rel)
	pfd, err := c.resolve(a, parent, true)
	if err != nil {
		return -1, err
	}
	opaque := false
	err = unix.Mkdirat(pfd, base, 0o755)
	if err == unix.EEXIST {
		if opaque, err = replaceWhiteout(pfd, base); err == nil && !opaque {
			// Only a dangling symlink exists yet fails to open as ENOENT.
			return -1, errdefs.InvalidArgument("parent %q is not a directory", rel)
		}
	}
	if err != nil {
		return -1, &os.PathError{Op: "mkdirat", Path: rel, Err: err}
	}
	a.stats.Inodes++
	// The umask may have narrowed the mode; implicit parents are 0755.
	if err := unix.Fchmodat(pfd, base, 0o755, 0); err != nil {
		return -1, &os.PathError{Op: "fchmodat", Path: rel, Err: err}
	}
	fd, err := openDirAt(pfd, base)
	if err != nil {
		return -1, &os.PathError{Op: "openat", Path: rel, Err: err}
	}
	f = os.NewFile(uintptr(fd), rel)
	if opaque {
		// As in directory: a deleted directory made anew shows only
		// this layer's content.
		if err := setOpaque(fd, rel); err != nil {
			f.Close()
			return -1, err
		}
	}
	return c.put(rel, f), nil
}

// replaceWhiteout turns the whiteout name in dirfd into a new directory and
// reports whether it did; anything else under name is left alone.
func replaceWhiteout(dirfd int, name string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !isWhiteout(&st) {
		return false, err
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil {
		return false, err
	}
	return true, unix.Mkdirat(dirfd, name, 0o755)
}

// openDirAt opens the directory name in dirfd without following a symlink.
// O_DIRECTORY also keeps a FIFO or device from ever being opened.
func openDirAt(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// resolveError classifies a failure to open a parent directory: anything
// that is not a plain I/O problem means the layer tries to put an entry
// under a non-directory or outside the root.
func resolveError(rel string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		// os.Root reports an escape with an error that is not an errno.
		return errdefs.New(errdefs.ErrInvalidArgument, "parent %q leads outside the layer: %w", rel, err)
	}
	switch errno {
	case syscall.ENOTDIR, syscall.ELOOP, syscall.ENOENT:
		return errdefs.New(errdefs.ErrInvalidArgument, "parent %q is not a directory in the layer: %w", rel, err)
	}
	return err
}

// put caches f as the directory rel, evicting the least recently used.
func (c *dirCache) put(rel string, f *os.File) int {
	fd := int(f.Fd())
	for i, e := range c.ents {
		if e.rel == rel {
			e.f.Close()
			c.ents = slices.Delete(c.ents, i, i+1)
			break
		}
	}
	if len(c.ents) == maxCachedDirs {
		c.ents[len(c.ents)-1].f.Close()
		c.ents = c.ents[:len(c.ents)-1]
	}
	c.ents = slices.Insert(c.ents, 0, cachedDir{rel: rel, f: f, fd: fd, gid: dirGid(fd)})
	return fd
}

// invalidateExcept closes every cached directory but keep. It runs after
// something was removed: a cached fd may then name a deleted directory, or a
// path may resolve differently. keep, the removed entry's parent, is intact.
func (c *dirCache) invalidateExcept(keep int) {
	c.ents = slices.DeleteFunc(c.ents, func(e cachedDir) bool {
		if e.fd == keep {
			return false
		}
		e.f.Close()
		return true
	})
}

func (c *dirCache) close() {
	for _, e := range c.ents {
		e.f.Close()
	}
	c.ents = nil
	c.top.Close()
}

// dirTimes remembers directory times until every child is written, since
// creating a child would change the parent's mtime again. Order is kept so
// the final pass visits directories as the tar did, which the cache likes.
type dirTimes struct {
	order []string
	times map[string][2]unix.Timespec
}

func newDirTimes() dirTimes { return dirTimes{times: map[string][2]unix.Timespec{}} }

func (d *dirTimes) set(rel string, ts [2]unix.Timespec) {
	if _, ok := d.times[rel]; !ok {
		d.order = append(d.order, rel)
	}
	d.times[rel] = ts
}

// forget drops rel and everything below it: they were removed.
func (d *dirTimes) forget(rel string) {
	prefix := rel + "/"
	for k := range d.times {
		if k == rel || strings.HasPrefix(k, prefix) {
			delete(d.times, k)
		}
	}
}

// setDirTimes applies the remembered times. A directory that can no longer
// be reached as recorded was replaced later in the tar and is skipped.
func (a *applier) setDirTimes() error {
	for _, rel := range a.dirTimes.order {
		ts, ok := a.dirTimes.times[rel]
		if !ok {
			continue
		}
		parent, base := splitName(rel)
		pfd, err := a.dirs.resolve(a, parent, false)
		if err != nil {
			continue
		}
		err = unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW)
		if err != nil && err != unix.ENOENT {
			return entryError(rel, &os.PathError{Op: "utimensat", Path: rel, Err: err})
		}
	}
	return nil
}

// forgetBelow is used when rel was removed; see dirCache.invalidateExcept.
func (a *applier) forgetBelow(rel string, keepfd int) {
	a.dirTimes.forget(rel)
	a.dirs.invalidateExcept(keepfd)
}
