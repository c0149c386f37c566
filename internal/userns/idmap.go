package userns

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// BindIdmapped mounts a clone of the directory src at dst (an existing
// directory) with its IDs shifted through the user namespace pinned at
// usernsPath: a file owned by host ID k there appears owned by k plus the
// mapping's host offset, so to a process in that namespace it appears owned
// by k. Nothing else changes: no file is chowned. src may be a file (dst
// then an existing file).
//
// The clone is created detached (open_tree), given the idmap while no one
// can see it, and only then attached, so no one ever sees it unmapped. It is
// private: nothing mounted later under src propagates into it.
func BindIdmapped(src, dst, usernsPath string, o BindOpts) error {
	ns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("idmap %s: open user namespace: %w", src, err)
	}
	defer unix.Close(ns)
	tree, err := idmappedClone(src, ns, o)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("idmap %s: attach at %s: %w", src, dst, err)
	}
	return nil
}

// BindOpts shape an idmapped clone.
type BindOpts struct {
	// ReadOnly makes the clone read-only, as overlay lower layers should be.
	ReadOnly bool
	// Recursive clones the mounts below src too (an rbind); every one of
	// them must then support idmapping.
	Recursive bool
}

// idmappedClone returns a detached, idmapped clone of the mount at src; when
// the returned fd is closed without being attached the clone goes away.
func idmappedClone(src string, usernsFD int, o BindOpts) (int, error) {
	flags, setFlags := uint(unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC), uint(0)
	if o.Recursive {
		flags |= unix.AT_RECURSIVE
		setFlags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return -1, fmt.Errorf("idmap %s: clone: %w", src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	if o.ReadOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(tree, "", uint(unix.AT_EMPTY_PATH)|setFlags, &attr); err != nil {
		unix.Close(tree)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
			// The filesystem (or kernel) cannot idmap: a fact of the
			// node, not of the request.
			return -1, errdefs.WithKind(errdefs.ErrFailedPrecondition,
				fmt.Errorf("idmapped mount of %s not supported here: %w", src, err))
		}
		return -1, fmt.Errorf("idmap %s: %w", src, err)
	}
	return tree, nil
}

// Detect proves that this kernel and the filesystem of dir support what a
// pod user namespace needs: creating a user namespace with a mapping and
// an idmapped clone of dir. Nothing is left behind. A nil error is the only
// basis for advertising user namespace support.
func Detect(dir string) error {
	h, err := Spawn(&Options{UID: probeMapping, GID: probeMapping}, 0)
	if err != nil {
		return err
	}
	defer h.Close()
	ns, err := unix.Open(h.NSPath(pinName), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open probe user namespace: %w", err)
	}
	defer unix.Close(ns)
	tree, err := idmappedClone(dir, ns, BindOpts{ReadOnly: true})
	if err != nil {
		return err
	}
	return unix.Close(tree)
}

// probeMapping is any valid mapping; Kubernetes' own range starts at 65536.
var probeMapping = Mapping{ContainerID: 0, HostID: 65536, Size: 65536}
