package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// maxMountData is the kernel's limit on mount(2) option data: one page.
const maxMountData = 4096

// mountRootfs mounts the overlay of the given layers (bottom to top) at
// target, with the writable layer under dir.
//
// Absolute lower dirs (about 80 bytes each) would hit the one-page limit on
// mount data at some 50 layers. So dir gets short symlinks l/0, l/1, ... to
// the layer dirs, and the mount runs on a thread that has its own working
// directory (unshare(CLONE_FS)) set to dir, with every path relative: about
// 5 bytes a layer, which puts the limit past the kernel's own maximum of
// 500 lower layers. The thread is thrown away afterwards.
func mountRootfs(dir, target string, lowers []string) error {
	if len(lowers) == 0 {
		return errdefs.InvalidArgument("image has no layers")
	}
	ns, err := readUsernsNote(dir)
	if err != nil {
		return err
	}
	links := filepath.Join(dir, "l")
	for _, d := range []string{links, filepath.Join(dir, "work"), target} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
	}
	// The merged root directory takes its mode from the upper dir: 0700
	// would lock every non-root user out of the container's "/".
	if err := os.MkdirAll(filepath.Join(dir, "upper"), 0o755); err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	rel := make([]string, len(lowers))
	// overlay's lowerdir lists the top layer first.
	for i, lower := range lowers {
		if lower == "" {
			return errdefs.NotFound("an image layer is no longer in the layer store")
		}
		name := strconv.Itoa(i)
		link := filepath.Join(links, name)
		if cur, err := os.Readlink(link); err != nil || cur != lower {
			os.Remove(link)
			if err := os.Symlink(lower, link); err != nil {
				return fmt.Errorf("prepare rootfs: %w", err)
			}
		}
		rel[len(lowers)-1-i] = "l/" + name
	}
	if ns != nil {
		return mountRootfsIdmapped(dir, target, lowers, ns)
	}
	data := "lowerdir=" + strings.Join(rel, ":") + ",upperdir=upper,workdir=work"
	if len(data)+len(volatileOpt) >= maxMountData {
		return errdefs.InvalidArgument("image has too many layers (%d) for an overlay mount", len(lowers))
	}
	if err := mountWritable(dir, target, data, filepath.Join(dir, "work")); err != nil {
		return fmt.Errorf("mount rootfs overlay at %s: %w", target, err)
	}
	return nil
}

// volatileOpt makes overlay skip syncing its upper dir: without it, every
// unmount of a rootfs runs a syncfs of the whole filesystem under root
// (15-90 ms on a busy disk, on the Remove path, flushing everyone's dirty
// pages). A container's writable layer never outlives the container in
// Kubernetes: what must survive a crash lives in volumes, which are bind
// mounts and keep their own semantics.
const volatileOpt = ",volatile"

// mountWritable mounts a container's writable overlay (data names upper and
// work relative to dir) with volatileOpt, or without it on a kernel older
// than 5.10. A volatile mount leaves work/incompat/volatile behind, which
// the kernel requires gone before the next mount of the same dirs (a
// remount after the mount vanished, or after a reboot for a container that
// is then judged dead): nothing reads that writable layer across a crash.
func mountWritable(dir, target, data, work string) error {
	if err := os.RemoveAll(filepath.Join(work, "work", "incompat")); err != nil {
		return err
	}
	err := mountOverlayIn(dir, target, 0, data+volatileOpt)
	if errors.Is(err, unix.EINVAL) {
		err = mountOverlayIn(dir, target, 0, data)
	}
	return err
}

// mountOverlayIn mounts an overlay whose options name directories relative
// to dir: short relative paths keep hundreds of layers within the one page
// the kernel takes for mount data. The chdir happens on a thread of its
// own (unshared fs) so the daemon's working directory never moves.
func mountOverlayIn(dir, target string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine's thread, with its private working
		// directory, exits with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", flags, data)
	}()
	return <-errc
}

// isMounted says whether something is mounted at dir: a mount point has
// another device than its parent (an overlay always gets its own).
func isMounted(dir string) (bool, error) {
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// unmountRootfs unmounts target; nothing mounted is success. A busy mount
// (someone holds a file in it) is detached: it goes away with its last user.
func unmountRootfs(target string) error {
	if err := unmountStaging(stagingDir(target)); err != nil {
		return err
	}
	for range 8 { // stacked mounts from an earlier retry, at most a few
		mounted, err := isMounted(target)
		if err != nil || !mounted {
			return err
		}
		err = unix.Unmount(target, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(target, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", target)
}

// lowerDirs returns the diff dirs of chainIDs; "" for a layer not in the store.
func (m *Manager) lowerDirs(chainIDs []digest.Digest) []string {
	dirs := make([]string, len(chainIDs))
	for i, id := range chainIDs {
		dirs[i] = m.cfg.Layers.DiffDir(id)
	}
	return dirs
}
