package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// UpdateResources changes the cgroup limits of a created or running
// container (kubelet's in-place resize, CPU and memory managers). Fields
// left zero keep their current value, as CRI's zero means "not specified";
// a new memory limit brings its own swap limit, so the create-time rule
// (swap = limit unless given) applies again.
//
// Both states have a runc container whose cgroup already exists (runc
// create sets it up), so the runtime applies the change at once; the bundle
// is rewritten too so that it keeps describing the container. The record
// changes only after the runtime accepted the change: a failed update
// leaves ContainerStatus as it was. An exited container has no cgroup left
// to change: ErrFailedPrecondition.
func (m *Manager) UpdateResources(ctx context.Context, id string, req *runtimeapi.LinuxContainerResources) error {
	if req == nil {
		return errdefs.InvalidArgument("update container %s: linux resources are required", id)
	}
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, c); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	switch st := c.state(); st {
	case Created, Running:
	case Exited:
		return errdefs.FailedPrecondition("container %s has exited: its resources cannot be updated", id)
	default: // creating or removing: not visible to CRI
		return errdefs.NotFound("container %q not found", id)
	}
	c.mu.Lock()
	cur := c.resourcesLocked()
	c.mu.Unlock()
	next := mergeResources(cur, req)
	res, err := spec.Resources(next, m.cfg.Node.Host)
	if err != nil {
		return err
	}
	if m.cfg.NRI != nil {
		if res, err = m.cfg.NRI.Update(ctx, c.view(), m.specOf(c), res); err != nil {
			return err
		}
	}
	// runc update does not touch hugetlb limits; refusing beats claiming
	// a change that did not happen.
	if m.cfg.Node.Host.Hugetlb && !hugepagesEqual(cur.GetHugepageLimits(), next.GetHugepageLimits()) {
		return errdefs.FailedPrecondition("update container %s: the runtime cannot change hugepage limits of an existing container", id)
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(next)
	if err != nil {
		return fmt.Errorf("update container %s: encode resources: %w", id, err)
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return err
	}
	if err := rt.UpdateResources(ctx, id, res); err != nil {
		return fmt.Errorf("update container %s: %w", id, err)
	}
	crashpoint.Hit(crashpoint.UpdateApplied)
	if err := m.rewriteBundleResources(id, res); err != nil {
		// The cgroup has the new values and the record gets them; only
		// CgroupsPath reads the bundle after create, and not its limits.
		m.log.Warn("update container: bundle keeps the old resources", "id", id, "err", err)
	}
	crashpoint.Hit(crashpoint.UpdateBundle)
	err = m.update(c, func(r *record) { r.Resources = data })
	c.mu.Lock()
	c.res = next
	c.spec = nil // the bundle changed: read again when needed
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("update container %s: the limits are applied but not recorded: %w", id, err)
	}
	if m.cfg.NRI != nil {
		m.cfg.NRI.PostUpdate(ctx, c.view(), m.specOf(c))
	}
	return nil
}

// resourcesLocked returns the resources in force; callers hold c.mu. The
// record's copy is decoded once, lazily, so recovery needs no extra step.
func (c *ctr) resourcesLocked() *runtimeapi.LinuxContainerResources {
	if c.res != nil {
		return c.res
	}
	if len(c.rec.Resources) > 0 {
		r := &runtimeapi.LinuxContainerResources{}
		if err := proto.Unmarshal(c.rec.Resources, r); err == nil {
			c.res = r
			return r
		}
		// A record this process wrote always decodes; if a damaged one does
		// not, the config's values are the best remaining answer.
	}
	return c.cfg.GetLinux().GetResources()
}

// mergeResources returns cur with the fields req specifies. oom_score_adj
// is not among them: runc update cannot change it, and kubelet sends the
// value the container already has (a resize keeps the QoS class).
func mergeResources(cur, req *runtimeapi.LinuxContainerResources) *runtimeapi.LinuxContainerResources {
	next := &runtimeapi.LinuxContainerResources{}
	if cur != nil {
		next = proto.Clone(cur).(*runtimeapi.LinuxContainerResources)
	}
	set := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	set(&next.CpuPeriod, req.CpuPeriod)
	set(&next.CpuQuota, req.CpuQuota)
	set(&next.CpuShares, req.CpuShares)
	if req.MemoryLimitInBytes != 0 {
		next.MemoryLimitInBytes = req.MemoryLimitInBytes
		next.MemorySwapLimitInBytes = req.MemorySwapLimitInBytes
	} else {
		set(&next.MemorySwapLimitInBytes, req.MemorySwapLimitInBytes)
	}
	if req.CpusetCpus != "" {
		next.CpusetCpus = req.CpusetCpus
	}
	if req.CpusetMems != "" {
		next.CpusetMems = req.CpusetMems
	}
	if len(req.HugepageLimits) > 0 {
		next.HugepageLimits = make([]*runtimeapi.HugepageLimit, len(req.HugepageLimits))
		for i, h := range req.HugepageLimits {
			next.HugepageLimits[i] = proto.Clone(h).(*runtimeapi.HugepageLimit)
		}
	}
	if len(req.Unified) > 0 {
		next.Unified = map[string]string{}
		for k, v := range req.Unified {
			next.Unified[k] = v
		}
	}
	return next
}

func hugepagesEqual(a, b []*runtimeapi.HugepageLimit) bool {
	key := func(ls []*runtimeapi.HugepageLimit) []string {
		out := make([]string, 0, len(ls))
		for _, l := range ls {
			out = append(out, fmt.Sprintf("%s=%d", l.GetPageSize(), l.GetLimit()))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// rewriteBundleResources puts res into the bundle's config.json, keeping
// the device rules (an update does not change devices). Write-and-rename:
// a reader never sees half a spec.
func (m *Manager) rewriteBundleResources(id string, res *specs.LinuxResources) error {
	path := filepath.Join(m.bundle(id), "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	next := *res
	if s.Linux.Resources != nil {
		next.Devices = s.Linux.Resources.Devices
		next.Pids, next.BlockIO, next.Network, next.Rdma = s.Linux.Resources.Pids, s.Linux.Resources.BlockIO, s.Linux.Resources.Network, s.Linux.Resources.Rdma
	}
	s.Linux.Resources = &next
	if data, err = json.Marshal(&s); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		os.Remove(tmp) // created, then the write failed (a full disk)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
