package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A container's conmon lives in a cgroup of its own beside the container's,
// under the same parent (kubelet's pod cgroup), as CRI-O's conmon_cgroup =
// "pod" does. Two reasons: the pod's accounting then covers the monitors it
// needs, and a service manager stopping the daemon's cgroup (systemd's
// KillMode=control-group) cannot kill every container's monitor with it.
//
// The move happens after Create has returned, off the pod's start path: in
// cgroup v1 every migration waits for an RCU grace period, ~0.8 ms per
// hierarchy, 8 ms a container here. Only the long-lived monitor moves; by
// then `runc create` has exited and the container is in its own cgroup.
// The path is written to the container's state dir before any cgroup is
// made, so Delete — also after a crash, in a later daemon — removes it, and
// Delete waits for a move still in flight.

const monitorCgroupFile = "monitor-cgroup"

// monitorCgroupPrefix names the monitor's cgroup after the container's.
const monitorCgroupPrefix = "cradle-conmon-"

// monitorCgroupFor returns the monitor cgroup of a bundle's container, or ""
// when it has none: the systemd driver (its scopes are systemd's to make) and
// relative cgroupsPaths (they hang off runc's own cgroup).
func (r *Runtime) monitorCgroupFor(bundle string) (string, error) {
	if !r.cfg.MonitorCgroups || r.cfg.SystemdCgroup {
		return "", nil
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return "", fmt.Errorf("bundle %s: %w", bundle, err)
	}
	if spec.Linux == nil || !path.IsAbs(spec.Linux.CgroupsPath) {
		return "", nil
	}
	cg := path.Clean(spec.Linux.CgroupsPath)
	if cg == "/" {
		return "", nil
	}
	return path.Join(path.Dir(cg), monitorCgroupPrefix+path.Base(cg)), nil
}

// placeMonitorAsync moves the container's monitor into cg in the
// background; Delete and Close wait for it.
func (r *Runtime) placeMonitorAsync(id, cg string, pid int) {
	done := make(chan struct{})
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.placing == nil {
		r.placing = map[string]chan struct{}{}
	}
	r.placing[id] = done
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.placing, id)
			r.mu.Unlock()
			close(done)
		}()
		// Accounting is worth a warning, not a failed container.
		if err := r.placeMonitor(id, cg, pid); err != nil {
			r.log.Warn("conmon stays outside its monitor cgroup", "container", id, "cgroup", cg, "err", err)
		}
	}()
}

// waitPlacement returns once no move of id's monitor is in flight.
func (r *Runtime) waitPlacement(ctx context.Context, id string) {
	r.mu.Lock()
	done := r.placing[id]
	r.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// placeMonitor records cg for the container and moves pid into it in every
// mounted hierarchy. A monitor that is already gone has nothing to move.
func (r *Runtime) placeMonitor(id, cg string, pid int) error {
	if err := writeFileAtomic(filepath.Join(r.ctrDir(id), monitorCgroupFile), []byte(cg)); err != nil {
		return err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		if err := joinCgroup(m, cg, pid); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// joinCgroup makes cg under the hierarchy mounted at mount and moves pid in.
func joinCgroup(mount, cg string, pid int) error {
	dir := filepath.Join(mount, filepath.FromSlash(cg))
	if err := mkdirCgroup(mount, dir); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move conmon %d into %s: %w", pid, dir, err)
	}
	return nil
}

// mkdirCgroup makes dir and its missing parents below mount. A new v1 cpuset
// cgroup starts with no CPUs and no memory nodes, where no process may join:
// each new level inherits its parent's, as runc does for containers.
func mkdirCgroup(mount, dir string) error {
	rel, err := filepath.Rel(mount, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s is not below %s", dir, mount)
	}
	cur := mount
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, part)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make cgroup %s: %w", cur, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if err := inheritCpuset(parent, cur, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// inheritCpuset copies a v1 cpuset file from parent into child when the
// child's is empty; hierarchies without the file are left alone.
func inheritCpuset(parent, child, name string) error {
	cur, err := os.ReadFile(filepath.Join(child, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || strings.TrimSpace(string(cur)) != "" {
		return err
	}
	if _, err := os.Stat(filepath.Join(child, "cgroup.controllers")); err == nil {
		return nil // cgroup v2: an empty cpuset.cpus means "the parent's"
	}
	val, err := os.ReadFile(filepath.Join(parent, name))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(child, name), val, 0o644); err != nil {
		return fmt.Errorf("set %s of %s: %w", name, child, err)
	}
	return nil
}

// removeMonitorCgroup removes the recorded monitor cgroup of a container whose
// conmon has exited, in every hierarchy. rmdir is all it uses: a cgroup that
// still holds a process stays, and the error says so.
func (r *Runtime) removeMonitorCgroup(id string) error {
	data, err := os.ReadFile(filepath.Join(r.ctrDir(id), monitorCgroupFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cg := path.Clean(string(data))
	if !path.IsAbs(cg) || !strings.HasPrefix(path.Base(cg), monitorCgroupPrefix) {
		return fmt.Errorf("container %s: bad monitor cgroup record %q", id, data)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		err := os.Remove(filepath.Join(m, filepath.FromSlash(cg)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
