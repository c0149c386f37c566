package layer

import (
	"archive/tar"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const (
	paxXattrPrefix = "SCHILY.xattr."
	overlayPrefix  = "trusted.overlay."
	overlayOpaque  = overlayPrefix + "opaque"
)

// meta is the metadata of one entry, validated before anything is created.
type meta struct {
	uid, gid int
	mode     uint32 // permission bits with setuid, setgid and sticky
	xattrs   []xattr
	times    [2]unix.Timespec // atime, mtime
}

type xattr struct {
	name  string
	value []byte
}

func headerMeta(hdr *tar.Header) (meta, error) {
	// -1 would mean "leave unchanged" to chown; the top id is reserved too.
	if hdr.Uid < 0 || hdr.Uid >= math.MaxUint32 || hdr.Gid < 0 || hdr.Gid >= math.MaxUint32 {
		return meta{}, errdefs.InvalidArgument("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	m := meta{
		uid:   hdr.Uid,
		gid:   hdr.Gid,
		mode:  uint32(hdr.Mode & 0o7777),
		times: [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)},
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok {
			continue
		}
		if err := xattrAllowed(name, v, hdr.Typeflag); err != nil {
			return meta{}, err
		}
		m.xattrs = append(m.xattrs, xattr{name: name, value: []byte(v)})
	}
	slices.SortFunc(m.xattrs, func(a, b xattr) int { return strings.Compare(a.name, b.name) })
	return m, nil
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// xattrAllowed keeps a layer from steering overlayfs: trusted.overlay.*
// attributes on a lower dir redirect lookups, mark metacopy files or act as
// whiteouts, which is the runtime's business, not the image's. The one
// harmless form, an opaque directory, is accepted since it means exactly
// what a ".wh..wh..opq" marker means.
func xattrAllowed(name, value string, typ byte) error {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return errdefs.InvalidArgument("malformed xattr name %q", name)
	}
	if !strings.HasPrefix(name, overlayPrefix) {
		return nil
	}
	if name == overlayOpaque && value == "y" && typ == tar.TypeDir {
		return nil
	}
	return errdefs.InvalidArgument("layer sets overlayfs attribute %s=%q", name, value)
}

// xattrTolerable says which failures to set an attribute are dropped:
//   - any namespace the filesystem does not support (EOPNOTSUPP): there is
//     nothing the runtime could do about it, and Docker and containerd carry
//     on too;
//   - security.* refused or rejected (EPERM, EINVAL): labels and
//     capabilities belong to the host's security modules, which may veto
//     them;
//   - user.* refused (EPERM): the kernel forbids user attributes on
//     symlinks and special files.
//
// trusted.overlay.opaque never fails silently: losing it would expose
// content the layer deleted.
func xattrTolerable(name string, err error) bool {
	switch {
	case name == overlayOpaque:
		return false
	case err == unix.EOPNOTSUPP:
		return true
	case strings.HasPrefix(name, "security."):
		return err == unix.EPERM || err == unix.EINVAL
	case strings.HasPrefix(name, "user."):
		return err == unix.EPERM
	}
	return false
}

func setXattrs(set func(name string, value []byte) error, xs []xattr) error {
	for _, x := range xs {
		if err := set(x.name, x.value); err != nil && !xattrTolerable(x.name, err) {
			return fmt.Errorf("set xattr %s: %w", x.name, err)
		}
	}
	return nil
}

// ownedAlready reports whether an entry just created in the directory
// parentfd already has the owner m asks for, so that chown would change
// nothing (most entries of most layers are root's, and so is the daemon). A
// new entry is the creator's, its group the creator's too unless the parent
// is setgid or the mount says grpid, when it is the parent's: with the
// parent's group equal to the creator's, both cases agree. parentfd -1 means
// the entry was not just created.
func (a *applier) ownedAlready(parentfd int, m meta) bool {
	return parentfd >= 0 && m.uid == a.uid && m.gid == a.gid && a.dirs.gid(parentfd) == a.gid
}

// metaFd applies owner, mode and xattrs through an open fd (regular files,
// directories); parentfd is as for ownedAlready. Owner goes first: chown
// clears setuid/setgid and file capabilities, so the mode and
// security.capability must follow it.
func (a *applier) metaFd(fd int, rel string, m meta, parentfd int) error {
	if a.chown && !a.ownedAlready(parentfd, m) {
		if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
			return &os.PathError{Op: "fchown", Path: rel, Err: err}
		}
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return &os.PathError{Op: "fchmod", Path: rel, Err: err}
	}
	return setXattrs(func(name string, value []byte) error {
		return unix.Fsetxattr(fd, name, value, 0)
	}, m.xattrs)
}

// metaAt applies all metadata by name to an entry just created that must not
// be opened (symlinks, devices, FIFOs). Only single names relative to a trusted parent
// fd are used, and nothing follows a symlink; xattrs go through the parent
// fd's /proc entry for want of an lsetxattrat.
func (a *applier) metaAt(e target, m meta, chmod bool) error {
	if a.chown && !a.ownedAlready(e.dirfd, m) {
		if err := unix.Fchownat(e.dirfd, e.base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fchownat", Path: e.rel, Err: err}
		}
	}
	if chmod {
		// The entry was just created by us and is no symlink.
		if err := unix.Fchmodat(e.dirfd, e.base, m.mode, 0); err != nil {
			return &os.PathError{Op: "fchmodat", Path: e.rel, Err: err}
		}
	}
	if len(m.xattrs) > 0 {
		p := "/proc/self/fd/" + strconv.Itoa(e.dirfd) + "/" + e.base
		err := setXattrs(func(name string, value []byte) error {
			return unix.Lsetxattr(p, name, value, 0)
		}, m.xattrs)
		if err != nil {
			return err
		}
	}
	return a.times(e, m)
}

func (a *applier) times(e target, m meta) error {
	if err := unix.UtimesNanoAt(e.dirfd, e.base, m.times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: e.rel, Err: err}
	}
	return nil
}
