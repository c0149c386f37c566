package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Every pod gets a cgroup parent of its own below the runtime's top
// (/bench-lists-<pid>-<runtime>/<pod>), as kubelet hands each pod its
// pod<uid> cgroup: containerd's pod stats read it, and cradle's read it
// instead of summing the containers.

// removeCgroupTop removes top and the pod cgroups below it in every
// hierarchy, deepest first, once the runtime has removed its pods (this is
// kubelet's job for the cgroups it hands runtimes). What still holds a
// process or a child stays, with an error naming it.
func removeCgroupTop(top string) error {
	mounts, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.FSType != "cgroup" && i.FSType != "cgroup2", false
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		root := filepath.Join(m.Mountpoint, top)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func cgroupTop(runtime string) string { return fmt.Sprintf("/bench-lists-%d-%s", os.Getpid(), runtime) }
