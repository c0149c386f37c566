package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// ApplyStats reports what Apply wrote.
type ApplyStats struct {
	Bytes  int64 // content bytes of regular files
	Inodes int64 // entries created
}

// Apply unpacks an uncompressed OCI/Docker layer tar stream into dir, which
// must exist. Whiteouts become overlayfs whiteouts (".wh.x" → char device 0:0
// named x; ".wh..wh..opq" → xattr trusted.overlay.opaque=y on the directory);
// as the OCI image spec says, a whiteout hides what lies in the layers below,
// never this layer's own entry of that name, wherever it stands in the tar.
// Any entry that would land outside dir (.., absolute paths, through a symlink,
// a hard link to outside) is rejected with an error wrapping
// errdefs.ErrInvalidArgument, and nothing is written outside dir. Apply reads r
// to the end of the tar archive only; the caller drains any trailer.
//
// Path rules: a leading "/" is dropped (Docker does the same; such names are
// common in the wild), any ".." component is rejected even when it would
// resolve inside dir (no legitimate layer has one), and the root entry "./"
// is skipped so dir keeps its own attributes. Parent directories are resolved
// through an os.Root, so a symlink met on the way is followed only while it
// stays inside dir; every creation then acts on a single name relative to an
// open parent directory and never follows a symlink in its last component.
//
// Apply does not sync: the layer store makes a whole unpack durable with one
// syncfs(2) before it commits the layer, which is far cheaper than an fsync
// per file and gives the same guarantee for a directory that only becomes
// visible by a later rename.
//
// Ownership is applied only when running as root; otherwise files keep the
// caller's ids. Extended attributes come from PAX "SCHILY.xattr." records; see
// xattrPolicy for which failures are tolerated. Apply is safe to call
// concurrently for different directories.
func Apply(ctx context.Context, dir string, r io.Reader) (ApplyStats, error) {
	a, err := newApplier(ctx, dir)
	if err != nil {
		return ApplyStats{}, err
	}
	defer a.close()

	src := &streamReader{r: r}
	tr := tar.NewReader(src)
	content := entryReader{tr: tr, src: src}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// With GODEBUG=tarinsecurepath=0 the reader flags names it deems
		// unsafe but still returns them; our own checks below decide.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return a.stats, fmt.Errorf("read layer tar: %w", src.formatError(err))
		}
		// Checked after the read, which may have waited on the network.
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		if err := a.entry(hdr, content); err != nil {
			return a.stats, entryError(hdr.Name, err)
		}
	}
	if err := a.setDirTimes(); err != nil {
		return a.stats, err
	}
	return a.stats, nil
}

// copyBufSize is large enough that most files are copied with one read and
// one write, and big files with few syscalls.
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// applier is the state of one Apply call.
type applier struct {
	ctx      context.Context
	root     *os.Root
	dirs     dirCache
	dirTimes dirTimes
	chown    bool
	uid, gid int // the ids new entries get, unless their parent imposes its group
	buf      *[]byte
	stats    ApplyStats
}

func newApplier(ctx context.Context, dir string) (*applier, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.WithKind(errdefs.ErrNotFound, err)
		}
		return nil, err
	}
	top, err := root.OpenFile(".", os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		root.Close()
		return nil, err
	}
	return &applier{
		ctx:      ctx,
		root:     root,
		dirs:     newDirCache(top),
		dirTimes: newDirTimes(),
		chown:    os.Geteuid() == 0,
		uid:      os.Geteuid(),
		gid:      os.Getegid(),
		buf:      copyBufs.Get().(*[]byte),
	}, nil
}

func (a *applier) close() {
	a.dirs.close()
	a.root.Close()
	copyBufs.Put(a.buf)
}

// entry applies one tar entry; r yields its content.
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errdefs.InvalidArgument("the layer root must be a directory")
		}
		return nil
	}
	parent, base := splitName(name)
	kind, err := classify(parent, base)
	if err != nil || kind == skipEntry {
		return err
	}
	switch kind {
	case opaqueMarker:
		return a.opaque(parent)
	case whiteoutMarker:
		return a.whiteout(parent, strings.TrimPrefix(base, whiteoutPrefix))
	}

	m, err := headerMeta(hdr)
	if err != nil {
		return err
	}
	e := target{rel: name, base: base}
	if hdr.Typeflag == tar.TypeLink {
		// Resolve the link target before the parent: both parent fds
		// must stay valid while linkat runs (see dirCache).
		return a.hardlink(parent, e, hdr.Linkname)
	}
	e.dirfd, err = a.dirs.resolve(a, parent, true)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return a.regular(e, m, r, isSparse(hdr))
	case tar.TypeDir:
		return a.directory(e, m)
	case tar.TypeSymlink:
		return a.symlink(e, m, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return a.node(e, m, hdr)
	default:
		return errdefs.InvalidArgument("unsupported tar entry type %q", hdr.Typeflag)
	}
}

// streamReader remembers the failure of the stream under the tar reader, so
// that the tar reader's own complaints can be told apart from it.
type streamReader struct {
	r   io.Reader
	err error
}

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// formatError marks err, from the tar reader, as the archive's fault unless
// it is the stream's own failure (a network error, a cancelled context),
// which passes unchanged. A stream that ends early is the archive's fault:
// what was sent is not a whole tar.
func (s *streamReader) formatError(err error) error {
	if s.err != nil && errors.Is(err, s.err) {
		return err
	}
	return errdefs.WithKind(errdefs.ErrInvalidArgument, err)
}

// entryReader yields an entry's content and gives read failures their kind
// (a sparse map that does not match its data, a truncated archive).
type entryReader struct {
	tr  *tar.Reader
	src *streamReader
}

func (e entryReader) Read(p []byte) (int, error) {
	n, err := e.tr.Read(p)
	if err != nil && err != io.EOF {
		err = e.src.formatError(err)
	}
	return n, err
}

// isSparse reports whether the reader expands holes of this entry, so that
// writing it naively could turn a tiny archive into a huge file.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// entryError names the entry in err and gives path-shaped failures (which
// only a malformed or hostile layer produces) the InvalidArgument kind.
func entryError(name string, err error) error {
	wrapped := fmt.Errorf("layer entry %q: %w", name, err)
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument):
		return wrapped
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errdefs.WithKind(errdefs.ErrResourceExhausted, wrapped)
	case errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EEXIST),
		errors.Is(err, syscall.E2BIG), errors.Is(err, syscall.ERANGE):
		return errdefs.WithKind(errdefs.ErrInvalidArgument, wrapped)
	}
	return wrapped
}
