// Package netns creates network, IPC and UTS namespaces for pod sandboxes and
// keeps them alive without a process: each namespace is pinned by a bind mount
// of its nsfs file onto a regular file in a directory the caller owns
// (<dir>/net, <dir>/ipc, <dir>/uts). runc joins them by path, CNI plugins enter
// the network namespace by path, and Unpin releases them.
//
// Mount propagation: Pin turns <dir> into a bind mount of itself with its own
// shared peer group (private, then shared). Without that,
//   - under an rshared / (a normal systemd node, and this project's CI), each
//     pin is also mounted into every other peer of / that shows the same
//     directory (a recursive bind of /run or of the state dir multiplies them);
//   - under a private /, a mount namespace created while the pod runs (a
//     systemd service with PrivateTmp, a helper's unshare) keeps a private copy
//     of the pin that our unmount never reaches, so the namespace leaks until
//     that process exits.
//
// With its own peer group the pins appear exactly once here, every mount
// namespace cloned later holds a peer or slave copy, and Unpin's unmount
// propagates into all of them, freeing the namespace.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Kind is a namespace type that can be pinned. Its value is the file name
// under the pin directory and under /proc/<pid>/ns.
type Kind string

// The kinds a pod sandbox pins.
const (
	Net Kind = "net"
	IPC Kind = "ipc"
	UTS Kind = "uts"
)

// allKinds is the order of Unpin's sweep; it covers every kind Pin can create
// so Unpin needs no record of what was pinned.
var allKinds = []Kind{Net, IPC, UTS}

func (k Kind) cloneFlag() (int, bool) {
	switch k {
	case Net:
		return unix.CLONE_NEWNET, true
	case IPC:
		return unix.CLONE_NEWIPC, true
	case UTS:
		return unix.CLONE_NEWUTS, true
	}
	return 0, false
}

// Pinned describes namespaces pinned under one directory.
type Pinned struct {
	dir   string
	kinds []Kind
}

// Dir is the pin directory.
func (p Pinned) Dir() string { return p.dir }

// Kinds lists the pinned kinds in the order they were requested.
func (p Pinned) Kinds() []Kind { return slices.Clone(p.kinds) }

// Path returns the pin file of kind, or "" when kind was not pinned.
func (p Pinned) Path(kind Kind) string {
	if !slices.Contains(p.kinds, kind) {
		return ""
	}
	return PathOf(p.dir, kind)
}

// PathOf is where Pin puts kind under dir; callers that recorded only the
// directory (after a restart) find the files with it.
func PathOf(dir string, kind Kind) string { return filepath.Join(dir, string(kind)) }

// Pin creates one new namespace of each kind and pins it under dir, creating
// dir if needed. The new network namespace has its loopback interface up.
//
// Crash safety: the directory mount and the empty pin files are made before
// any namespace is mounted, and Unpin removes any mix of them, so a caller
// that records dir before calling Pin can always clean up after a crash. A
// failed Pin has already undone what it did. Pin refuses a directory that
// still holds a live pin (AlreadyExists) rather than stacking mounts on it.
func Pin(dir string, kinds ...Kind) (Pinned, error) {
	if err := checkDir(dir); err != nil {
		return Pinned{}, err
	}
	if len(kinds) == 0 {
		return Pinned{}, errdefs.InvalidArgument("pin %s: no namespace kinds given", dir)
	}
	flags := 0
	for i, k := range kinds {
		f, ok := k.cloneFlag()
		if !ok {
			return Pinned{}, errdefs.InvalidArgument("pin %s: unknown namespace kind %q", dir, k)
		}
		if slices.Contains(kinds[:i], k) {
			return Pinned{}, errdefs.InvalidArgument("pin %s: namespace kind %q given twice", dir, k)
		}
		flags |= f
	}
	for _, k := range allKinds {
		if Exists(PathOf(dir, k)) {
			return Pinned{}, errdefs.AlreadyExists("pin %s: %s namespace already pinned there", dir, k)
		}
	}

	if err := pin(dir, flags, kinds); err != nil {
		if uerr := Unpin(dir); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return Pinned{}, err
	}
	return Pinned{dir: dir, kinds: slices.Clone(kinds)}, nil
}

func pin(dir string, flags int, kinds []Kind) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sysErr(fmt.Errorf("pin: %w", err))
	}
	if err := ownPeerGroup(dir); err != nil {
		return err
	}
	for _, k := range kinds {
		// O_EXCL is not used: an empty file left by a crash is reused, and
		// the nsfs check in Pin already rejected live pins.
		f, err := os.OpenFile(PathOf(dir, k), os.O_RDONLY|os.O_CREATE, 0o400)
		if err != nil {
			return sysErr(fmt.Errorf("pin: create %s file: %w", k, err))
		}
		f.Close()
	}

	// The namespaces are created by a worker thread that is discarded
	// afterwards rather than switched back. Only that thread changes
	// namespaces; its mount namespace stays the host's, so the bind mounts
	// are visible to everyone.
	var err error
	onWorkerThread(func() bool {
		err = pinOnThisThread(dir, flags, kinds)
		return false
	})
	return err
}

func pinOnThisThread(dir string, flags int, kinds []Kind) error {
	if err := unix.Unshare(flags); err != nil {
		return sysErr(fmt.Errorf("pin %s: unshare: %w", dir, err))
	}
	if flags&unix.CLONE_NEWNET != 0 {
		if err := loopbackUp(); err != nil {
			return sysErr(fmt.Errorf("pin %s: bring up lo: %w", dir, err))
		}
	}
	for _, k := range kinds {
		src := "/proc/thread-self/ns/" + string(k)
		if err := unix.Mount(src, PathOf(dir, k), "", unix.MS_BIND, ""); err != nil {
			return sysErr(fmt.Errorf("pin %s: bind %s namespace: %w", dir, k, err))
		}
	}
	return nil
}

// ownPeerGroup makes dir a bind mount of itself (unless it already is a
// mount point, as after a crash) in a shared peer group of its own; see the
// package comment for why.
func ownPeerGroup(dir string) error {
	mnt, err := isMountPoint(dir)
	if err != nil {
		return sysErr(fmt.Errorf("pin: %w", err))
	}
	if !mnt {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return sysErr(fmt.Errorf("pin: bind %s onto itself: %w", dir, err))
		}
	}
	// Private first: a bind of a shared mount joins the source's peer group;
	// leaving it and then sharing again starts a new group.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return sysErr(fmt.Errorf("pin: make %s private: %w", dir, err))
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return sysErr(fmt.Errorf("pin: make %s shared: %w", dir, err))
	}
	return nil
}

// isMountPoint reports whether dir is the root of a mount: its mount ID
// differs from its parent's. Unlike comparing st_dev this also sees bind
// mounts within one filesystem. It needs statx's mount ID (Linux 5.8).
func isMountPoint(dir string) (bool, error) {
	id := func(p string) (uint64, error) {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
			return 0, fmt.Errorf("statx %s: %w", p, err)
		}
		if st.Mask&unix.STATX_MNT_ID == 0 {
			return 0, fmt.Errorf("statx %s: kernel reports no mount ID (Linux 5.8 or newer needed)", p)
		}
		return st.Mnt_id, nil
	}
	self, err := id(dir)
	if err != nil {
		return false, err
	}
	parent, err := id(filepath.Join(dir, ".."))
	if err != nil {
		return false, err
	}
	return self != parent, nil
}

// loopbackUp sets IFF_UP on lo of the calling thread's network namespace, so
// pods have a working localhost whether or not the CNI config chains the
// loopback plugin.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// Unpin unmounts and removes every pin file under dir, the directory's own
// mount and the directory itself. It accepts any partial state Pin or a crash
// can leave (files without mounts, a directory mount without files, nothing
// at all) and succeeds when dir is already gone. Unmounts are lazy
// (MNT_DETACH): a process still inside a namespace keeps it alive, but the
// pin is gone. Files in dir that Pin did not create are left, and so is dir
// then.
func Unpin(dir string) error {
	if err := checkDir(dir); err != nil {
		return err
	}
	var errs []error
	for _, k := range allKinds {
		p := PathOf(dir, k)
		if err := unmountAll(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := unmountAll(dir); err != nil {
			errs = append(errs, err)
		} else if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return sysErr(fmt.Errorf("unpin %s: %w", dir, err))
	}
	return nil
}

// unmountAll detaches every mount stacked on p. EINVAL means p is not (or no
// longer) a mount point. The bound only stops a runaway loop; nothing stacks
// that many mounts.
func unmountAll(p string) error {
	for range 64 {
		err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", p)
}

// Exists reports whether path is a namespace file: a live pin, or a
// /proc/<pid>/ns entry. An empty pin file whose mount is gone is not.
func Exists(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

func checkDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return errdefs.InvalidArgument("namespace pin directory %q must be a clean absolute path other than /", dir)
	}
	return nil
}

// sysErr gives a failed system call the kind a caller can act on; the rest
// stay without kind (Unknown): they are faults of this host, not of a request.
func sysErr(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return errdefs.WithKind(errdefs.ErrPermissionDenied, err)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.ENOMEM):
		// ENOSPC is also what unshare returns past user.max_*_namespaces.
		return errdefs.WithKind(errdefs.ErrResourceExhausted, err)
	}
	return err
}
