package oci

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// removeSpecCgroup removes the leaf cgroup of a container whose `runc create`
// was killed half-way: runc had made the cgroup but no state yet, so `runc
// delete` cannot clean it. Only rmdir is used, which fails on a cgroup that
// still has processes. With the systemd driver the scope is systemd's.
func (r *Runtime) removeSpecCgroup(bundle string) error {
	if r.cfg.SystemdCgroup {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	if spec.Linux == nil || !filepath.IsAbs(spec.Linux.CgroupsPath) {
		return nil // relative paths hang off runc's own cgroup; not guessed here
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		err := os.Remove(filepath.Join(m, filepath.Clean(spec.Linux.CgroupsPath)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cgroupMounts lists the mount points of the cgroup (v1) and cgroup2
// hierarchies of this mount namespace.
func cgroupMounts() ([]string, error) {
	infos, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(infos))
	for _, i := range infos {
		out = append(out, i.Mountpoint)
	}
	return out, nil
}
