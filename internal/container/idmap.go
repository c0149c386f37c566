package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/userns"
)

// A container of a pod with its own user namespace gets its rootfs overlay
// on idmapped lower layers: runc 1.1 cannot idmap mounts itself, and without
// the idmap every image file (owned by host IDs) would show up as nobody to
// the container's root. Each lower layer gets a read-only idmapped clone
// under <bundle>/idmap/; the overlay is mounted on those clones and keeps
// private references to them, so the clones are detached right after.
//
// The writable layer is not idmapped but owned by the pod's root: overlay
// creates its work files with the credentials of whoever mounted it (host
// root), and host root has no ID inside the mapping, so an idmapped upper
// layer makes overlay fall back to read-only. Owning upper/ by the mapped
// root is what the container's root needs; what it writes there is owned
// on disk by its host IDs. The layers themselves are never chowned.
//
// The pod's user namespace path is noted in <dir>/userns before the first
// mount, so a remount after a restart uses the same mapping.

const usernsNote = "userns.json"

// usernsInfo is the note: the pinned namespace and the host IDs of its root.
type usernsInfo struct {
	Path     string `json:"path"`
	UID, GID uint32
}

// noteUserns records the pod's user namespace for mountRootfs; a pod in
// the host's user namespace writes nothing.
func noteUserns(dir, path string, pod *runtimeapi.PodSandboxConfig) error {
	opts, err := userns.FromCRI(pod.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions())
	if err != nil || opts == nil {
		return err
	}
	if path == "" {
		return errdefs.FailedPrecondition("the sandbox has no user namespace path")
	}
	b, err := json.Marshal(usernsInfo{Path: path, UID: opts.UID.HostRoot(), GID: opts.GID.HostRoot()})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, usernsNote), b, 0o600); err != nil {
		return fmt.Errorf("note container user namespace: %w", err)
	}
	return nil
}

// readUsernsNote returns nil for a container in the host's user namespace.
func readUsernsNote(dir string) (*usernsInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, usernsNote))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read container user namespace note: %w", err)
	}
	var u usernsInfo
	if err := json.Unmarshal(b, &u); err != nil || u.Path == "" {
		return nil, fmt.Errorf("container user namespace note %s is corrupt: %v", filepath.Join(dir, usernsNote), err)
	}
	return &u, nil
}

func stagingDir(target string) string { return filepath.Join(filepath.Dir(target), "idmap") }

// mountRootfsIdmapped is mountRootfs for a container in the user namespace
// pinned at ns.
func mountRootfsIdmapped(dir, target string, lowers []string, u *usernsInfo) (err error) {
	ns := u.Path
	if !userns.Exists(ns) {
		return errdefs.FailedPrecondition("the pod's user namespace %s is gone", ns)
	}
	stage := stagingDir(target)
	// Whatever happens, no clone outlives this call: the overlay holds its
	// own references.
	defer func() {
		if cerr := unmountStaging(stage); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	if err := os.Lchown(filepath.Join(dir, "upper"), int(u.UID), int(u.GID)); err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	rel := make([]string, len(lowers))
	for i, lower := range lowers {
		if lower == "" {
			return errdefs.NotFound("an image layer is no longer in the layer store")
		}
		name := strconv.Itoa(i)
		if err := os.Mkdir(filepath.Join(stage, name), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("prepare rootfs: %w", err)
		}
		if err := userns.BindIdmapped(lower, filepath.Join(stage, name), ns, userns.BindOpts{ReadOnly: true}); err != nil {
			return err
		}
		rel[len(lowers)-1-i] = name
	}
	data := "lowerdir=" + strings.Join(rel, ":") + ",upperdir=" + filepath.Join(dir, "upper") + ",workdir=" + filepath.Join(dir, "work")
	if len(data)+len(volatileOpt) >= maxMountData {
		return errdefs.InvalidArgument("image has too many layers (%d) for an overlay mount", len(lowers))
	}
	// The runtime reaches the rootfs from inside the user namespace, where
	// only the "other" bits apply to these host-owned directories.
	for _, d := range []string{filepath.Dir(filepath.Dir(target)), filepath.Dir(target)} {
		if err := addSearch(d); err != nil {
			return err
		}
	}
	if err := mountWritable(stage, target, data, filepath.Join(dir, "work")); err != nil {
		return fmt.Errorf("mount idmapped rootfs overlay at %s: %w", target, err)
	}
	return nil
}

// unmountStaging detaches every idmapped clone under stage (left by a crash
// between attach and detach) and removes the directories, so a later
// RemoveAll of the bundle can never walk into a layer. Absent is fine.
func unmountStaging(stage string) error {
	ents, err := os.ReadDir(stage)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("idmap staging: %w", err)
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(stage, e.Name())
		for range 8 {
			uerr := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			if uerr == nil {
				continue
			}
			if !errors.Is(uerr, unix.EINVAL) && !errors.Is(uerr, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, uerr))
			}
			break
		}
		// Remove, never RemoveAll: should the unmount have failed, this
		// fails on a non-empty directory instead of deleting a layer.
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(stage); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func addSearch(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	if st.Mode().Perm()&0o001 != 0 {
		return nil
	}
	if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
		return fmt.Errorf("prepare rootfs: %w", err)
	}
	return nil
}

// idmapMounts gives the container's bind mounts (volumes, the pod's files
// and /dev/shm) idmapped sources, so their files have the same owners in
// the container as they would without a user namespace, which is what
// KEP-127 asks of a runtime. Each source is cloned idmapped under the
// staging dir and the spec's source points there; runc binds the clone.
// Binds with mount propagation stay as they are: an idmapped clone is
// private, and propagation is worth more than owners. So does a source
// whose filesystem cannot be idmapped (NFS, for one): its files then show
// as nobody, as with runtimes that cannot idmap at all.
func (m *Manager) idmapMounts(id string, s *specs.Spec) error {
	u, err := readUsernsNote(m.dir(id))
	if err != nil || u == nil {
		return err
	}
	stage := stagingDir(m.rootfs(id))
	// runc binds from inside the user namespace, which reaches the clones
	// only through "other" search permission.
	if err := os.MkdirAll(stage, 0o711); err != nil {
		return fmt.Errorf("idmap mounts: %w", err)
	}
	if err := os.Chmod(stage, 0o711); err != nil {
		return fmt.Errorf("idmap mounts: %w", err)
	}
	for i := range s.Mounts {
		mnt := &s.Mounts[i]
		if mnt.Type != "bind" || propagates(mnt.Options) {
			continue
		}
		st, err := os.Stat(mnt.Source)
		if err != nil {
			return errdefs.NotFound("mount source %s: %v", mnt.Source, err)
		}
		dst := filepath.Join(stage, "v"+strconv.Itoa(i))
		if err := mountPoint(dst, st.IsDir()); err != nil {
			return err
		}
		err = userns.BindIdmapped(mnt.Source, dst, u.Path, userns.BindOpts{Recursive: slices.Contains(mnt.Options, "rbind")})
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			m.log.Info("mount source cannot be idmapped; its files show as nobody in the container",
				"id", id, "source", mnt.Source, "err", err)
			os.Remove(dst)
			continue
		}
		if err != nil {
			return err
		}
		mnt.Source = dst
	}
	return nil
}

// releaseIdmapMounts detaches the clones idmapMounts made once the runtime
// has bound them into the container: they would otherwise keep the volumes'
// filesystems busy on the host until the container is removed.
func (m *Manager) releaseIdmapMounts(id string) {
	if err := unmountStaging(stagingDir(m.rootfs(id))); err != nil {
		m.log.Warn("detach idmapped mount sources; removal retries", "id", id, "err", err)
	}
}

func propagates(opts []string) bool {
	for _, o := range opts {
		switch o {
		case "shared", "rshared", "slave", "rslave":
			return true
		}
	}
	return false
}

func mountPoint(p string, dir bool) error {
	var err error
	if dir {
		err = os.Mkdir(p, 0o700)
	} else {
		var f *os.File
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
		}
	}
	if err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("idmap mounts: %w", err)
	}
	return nil
}
