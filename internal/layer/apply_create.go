package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// target is where an entry goes: the single name base inside the open
// directory dirfd. rel is its path from the layer root.
type target struct {
	dirfd int
	rel   string
	base  string
}

func joinName(parent, base string) string {
	if parent == "." {
		return base
	}
	return parent + "/" + base
}

// create runs mk; if the name is taken, it clears it and runs mk once more.
func (a *applier) create(e target, op string, mk func() error) error {
	err := mk()
	if err == unix.EEXIST {
		if _, err = a.makeRoom(e, false); err != nil {
			return err
		}
		err = mk()
	}
	if err != nil {
		return &os.PathError{Op: op, Path: e.rel, Err: err}
	}
	a.stats.Inodes++
	return nil
}

// prior says what makeRoom found under an entry's name.
type prior int

const (
	priorNone     prior = iota // nothing
	priorDir                   // a directory, kept for a directory entry
	priorWhiteout              // a whiteout this layer made, now removed
	priorOther                 // anything else, now removed
)

// makeRoom clears e's name for a new entry, as Docker and containerd do: an
// existing directory is kept when a directory replaces it (dir=true),
// anything else is removed, a directory together with its content.
func (a *applier) makeRoom(e target, dir bool) (prior, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(e.dirfd, e.base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return priorNone, nil
		}
		return priorNone, &os.PathError{Op: "fstatat", Path: e.rel, Err: err}
	}
	was := priorOther
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if dir {
			return priorDir, nil
		}
		// os.Root removes without following symlinks and cannot escape.
		if err := a.root.RemoveAll(e.rel); err != nil {
			return priorNone, err
		}
	} else {
		if isWhiteout(&st) {
			was = priorWhiteout
		}
		if err := unix.Unlinkat(e.dirfd, e.base, 0); err != nil {
			return priorNone, &os.PathError{Op: "unlinkat", Path: e.rel, Err: err}
		}
	}
	a.forgetBelow(e.rel, e.dirfd)
	return was, nil
}

// isWhiteout reports whether st is overlayfs' whiteout, a 0:0 char device.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func (a *applier) regular(e target, m meta, r io.Reader, sparse bool) error {
	var fd int
	err := a.create(e, "openat", func() (err error) {
		// O_EXCL|O_NOFOLLOW: an existing name, symlink or not, is cleared
		// by create rather than written through.
		fd, err = unix.Openat(e.dirfd, e.base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	n, err := a.copy(fd, e.rel, r, sparse)
	a.stats.Bytes += n
	// Content first: writing drops setuid bits and file capabilities.
	if err == nil {
		err = a.metaFd(fd, e.rel, m, e.dirfd)
	}
	if err == nil {
		err = a.times(e, m)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: e.rel, Err: cerr}
	}
	return err
}

// zeroChunk is compared against to find holes in sparse entries.
var zeroChunk = sync.OnceValue(func() []byte { return make([]byte, copyBufSize) })

// copy writes r to fd through the applier's large buffer. Chunks of a sparse
// entry that are all zero become holes, so an archive cannot inflate a few
// bytes of sparse map into gigabytes of written zeros. Raw writes on the fd
// spare the per-file cost of an *os.File.
func (a *applier) copy(fd int, rel string, r io.Reader, sparse bool) (int64, error) {
	buf := *a.buf
	var n int64
	for {
		// A sparse entry may declare exabytes of holes, which the tar
		// reader yields as zeros without reading the stream: only the
		// context can end such an entry early.
		if err := a.ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := readChunk(r, buf)
		if m > 0 {
			chunk := buf[:m]
			var err error
			if sparse && bytes.Equal(chunk, zeroChunk()[:m]) {
				_, err = unix.Seek(fd, int64(m), io.SeekCurrent)
			} else {
				err = writeAll(fd, chunk)
			}
			if err != nil {
				return n, &os.PathError{Op: "write", Path: rel, Err: err}
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
	}
	if sparse {
		// A trailing hole has no bytes written.
		if err := unix.Ftruncate(fd, n); err != nil {
			return n, &os.PathError{Op: "ftruncate", Path: rel, Err: err}
		}
	}
	return n, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readChunk fills buf unless r ends or fails first. Unlike io.ReadFull it
// passes the reader's own errors through unchanged (a truncated tar reports
// io.ErrUnexpectedEOF, which must not read as a short final chunk).
func readChunk(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *applier) directory(e target, m meta) error {
	err := unix.Mkdirat(e.dirfd, e.base, 0o700)
	created := err == nil
	was := priorNone
	if err == unix.EEXIST {
		if was, err = a.makeRoom(e, true); err != nil {
			return err
		}
		if was != priorDir {
			err = unix.Mkdirat(e.dirfd, e.base, 0o700)
			created = err == nil
		}
	}
	if err != nil {
		return &os.PathError{Op: "mkdirat", Path: e.rel, Err: err}
	}
	if created {
		a.stats.Inodes++
	}
	fd, err := openDirAt(e.dirfd, e.base)
	if err != nil {
		return &os.PathError{Op: "openat", Path: e.rel, Err: err}
	}
	f := os.NewFile(uintptr(fd), e.rel)
	parentfd := -1 // a directory kept from before may have any owner
	if created {
		parentfd = e.dirfd
	}
	if err := a.metaFd(fd, e.rel, m, parentfd); err == nil && was == priorWhiteout {
		// The layer deleted this directory of the layers below and made a
		// new one: only its own content may show.
		err = setOpaque(fd, e.rel)
	}
	if err != nil {
		f.Close()
		return err
	}
	a.dirTimes.set(e.rel, m.times)
	// Its children most likely come next.
	a.dirs.put(e.rel, f)
	return nil
}

// symlink creates a symlink. Its target is content, never followed here, so
// an absolute or climbing target (/bin/sh -> /bin/busybox) is legitimate.
func (a *applier) symlink(e target, m meta, linkname string) error {
	if linkname == "" || strings.IndexByte(linkname, 0) >= 0 {
		return errdefs.InvalidArgument("malformed symlink target %q", linkname)
	}
	err := a.create(e, "symlinkat", func() error { return unix.Symlinkat(linkname, e.dirfd, e.base) })
	if err != nil {
		return err
	}
	return a.metaAt(e, m, false)
}

func (a *applier) node(e target, m meta, hdr *tar.Header) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	var dev uint64
	if typ != unix.S_IFIFO {
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return errdefs.InvalidArgument("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		dev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	}
	err := a.create(e, "mknodat", func() error { return unix.Mknodat(e.dirfd, e.base, typ|m.mode, int(dev)) })
	if err != nil {
		return err
	}
	return a.metaAt(e, m, true)
}

// hardlink links e to linkname, another entry of this layer. The link
// shares the target's inode and so its metadata; none is applied.
func (a *applier) hardlink(parent string, e target, linkname string) error {
	tname, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if tname == "." || tname == e.rel {
		return errdefs.InvalidArgument("hard link to %q", linkname)
	}
	tparent, tbase := splitName(tname)
	// Opened outside the cache, so resolving e's parent cannot evict it.
	tdir, err := a.root.OpenFile(tparent, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return resolveError(tparent, err)
	}
	defer tdir.Close()
	if e.dirfd, err = a.dirs.resolve(a, parent, true); err != nil {
		return err
	}
	err = a.create(e, "linkat", func() error {
		// flags 0: a symlink target is linked itself, never followed.
		return unix.Linkat(int(tdir.Fd()), tbase, e.dirfd, e.base, 0)
	})
	if err == nil {
		return nil
	}
	if errno, ok := unwrapErrno(err); ok && (errno == unix.ENOENT || errno == unix.EPERM) {
		return errdefs.New(errdefs.ErrInvalidArgument, "hard link target %q is not a file in the layer: %w", linkname, err)
	}
	return err
}

// whiteout hides parent/hidden of the layers below with overlayfs' marker,
// a 0:0 character device. A whiteout applies to the layers below only (OCI
// image-spec, "Whiteouts"), whatever its place in the tar: what this layer
// itself puts under that name stays, a non-directory hiding the layers below
// anyway, a directory made opaque so that only its own content shows.
func (a *applier) whiteout(parent, hidden string) error {
	pfd, err := a.dirs.resolve(a, parent, true)
	if err != nil {
		return err
	}
	rel := joinName(parent, hidden)
	var st unix.Stat_t
	err = unix.Fstatat(pfd, hidden, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		if err := unix.Mknodat(pfd, hidden, unix.S_IFCHR, 0); err != nil {
			return &os.PathError{Op: "mknodat", Path: rel, Err: err}
		}
		a.stats.Inodes++
		return nil
	case err != nil:
		return &os.PathError{Op: "fstatat", Path: rel, Err: err}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		fd, err := openDirAt(pfd, hidden)
		if err != nil {
			return &os.PathError{Op: "openat", Path: rel, Err: err}
		}
		defer unix.Close(fd)
		return setOpaque(fd, rel)
	}
	return nil
}

// opaque makes overlayfs ignore what the layers below have in dir.
func (a *applier) opaque(dir string) error {
	fd, err := a.dirs.resolve(a, dir, true)
	if err != nil {
		return err
	}
	return setOpaque(fd, dir)
}

func setOpaque(fd int, rel string) error {
	if err := unix.Fsetxattr(fd, overlayOpaque, []byte("y"), 0); err != nil {
		return &os.PathError{Op: "setxattr " + overlayOpaque, Path: rel, Err: err}
	}
	return nil
}

func unwrapErrno(err error) (syscall.Errno, bool) {
	if pe, ok := err.(*os.PathError); ok {
		errno, ok := pe.Err.(syscall.Errno)
		return errno, ok
	}
	return 0, false
}
