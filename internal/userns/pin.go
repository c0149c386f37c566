package userns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// pinName is the pin file under a pin directory.
const pinName = "user"

// PathOf is the pinned user namespace under dir; runc joins it by this path
// and idmapped mounts open it.
func PathOf(dir string) string { return filepath.Join(dir, pinName) }

// Pin bind-mounts the user namespace of h onto <dir>/user, creating dir.
// As with internal/netns, dir becomes a mount of itself in a shared peer
// group of its own, so the pin is mounted exactly once whatever the
// propagation of / and Unpin's unmount reaches every copy.
//
// Crash safety: the caller records dir first; Unpin accepts any state Pin
// leaves. A failed Pin has undone itself.
func Pin(dir string, h *Holder) (string, error) {
	if err := checkDir(dir); err != nil {
		return "", err
	}
	p := PathOf(dir)
	if Exists(p) {
		return "", errdefs.AlreadyExists("user namespace already pinned at %s", p)
	}
	err := pin(dir, h.NSPath(pinName))
	if err != nil {
		if uerr := Unpin(dir); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return "", err
	}
	return p, nil
}

func pin(dir, src string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("pin user namespace: %w", err)
	}
	if err := ownPeerGroup(dir); err != nil {
		return err
	}
	f, err := os.OpenFile(PathOf(dir), os.O_RDONLY|os.O_CREATE, 0o400)
	if err != nil {
		return fmt.Errorf("pin user namespace: %w", err)
	}
	f.Close()
	if err := unix.Mount(src, PathOf(dir), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin user namespace %s: %w", src, err)
	}
	return nil
}

// Unpin releases the pin under dir and removes dir; any partial state, or
// none, is fine. The unmount is lazy: a container still in the namespace
// keeps it alive.
func Unpin(dir string) error {
	if err := checkDir(dir); err != nil {
		return err
	}
	p := PathOf(dir)
	if err := unmountAll(p); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin user namespace: %w", err)
	}
	if err := unmountAll(dir); err != nil {
		return err
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin user namespace: %w", err)
	}
	return nil
}

// Exists reports whether path is a live namespace file.
func Exists(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// ownPeerGroup makes dir a mount of itself (unless a crash left it one) in
// a shared peer group of its own, as internal/netns does for its pins.
func ownPeerGroup(dir string) error {
	mnt, err := isMountPoint(dir)
	if err != nil {
		return err
	}
	if !mnt {
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
	}
	// Private first: leaving the parent's peer group, then sharing again,
	// starts a group of our own.
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

func mountID(p string) (uint64, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
		return 0, fmt.Errorf("statx %s: %w", p, err)
	}
	if st.Mask&unix.STATX_MNT_ID == 0 {
		return 0, fmt.Errorf("statx %s: no mount ID (Linux 5.8 or newer needed)", p)
	}
	return st.Mnt_id, nil
}

// isMountPoint compares mount IDs, which also tells bind mounts apart.
func isMountPoint(dir string) (bool, error) {
	self, err := mountID(dir)
	if err != nil {
		return false, err
	}
	parent, err := mountID(filepath.Join(dir, ".."))
	if err != nil {
		return false, err
	}
	return self != parent, nil
}

// unmountAll detaches every mount stacked on p; not mounted or absent is
// success.
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

func checkDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return errdefs.InvalidArgument("user namespace pin directory %q must be a clean absolute path other than /", dir)
	}
	return nil
}
