package spec

import (
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// buildResources converts CRI resources. Zero means "not specified" in CRI,
// so zero fields stay unset and the cgroup keeps its parent's value.
func buildResources(r *runtimeapi.LinuxContainerResources, host HostFacts) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{}
	if r == nil {
		return out, nil
	}
	cpu := &specs.LinuxCPU{}
	if v := r.GetCpuShares(); v != 0 {
		if v < 0 {
			return nil, errdefs.InvalidArgument("cpu_shares %d is negative", v)
		}
		shares := uint64(v)
		cpu.Shares = &shares
	}
	if v := r.GetCpuPeriod(); v != 0 {
		if v < 0 {
			return nil, errdefs.InvalidArgument("cpu_period %d is negative", v)
		}
		period := uint64(v)
		cpu.Period = &period
	}
	if v := r.GetCpuQuota(); v != 0 {
		// -1 is the kernel's "no limit".
		if v < -1 {
			return nil, errdefs.InvalidArgument("cpu_quota %d is below -1", v)
		}
		cpu.Quota = &v
	}
	var err error
	if cpu.Cpus, err = cpuList("cpuset_cpus", r.GetCpusetCpus()); err != nil {
		return nil, err
	}
	if cpu.Mems, err = cpuList("cpuset_mems", r.GetCpusetMems()); err != nil {
		return nil, err
	}
	if *cpu != (specs.LinuxCPU{}) {
		out.CPU = cpu
	}
	if out.Memory, err = memory(r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes(), host.SwapAccounting); err != nil {
		return nil, err
	}
	if out.HugepageLimits, err = hugepages(r.GetHugepageLimits(), host); err != nil {
		return nil, err
	}
	if out.Unified, err = unified(r.GetUnified(), host.CgroupV2); err != nil {
		return nil, err
	}
	return out, nil
}

// memory sets swap equal to the limit when no swap limit is given, so a
// container cannot swap unless asked (containerd does the same). OCI's swap
// is memory+swap, as in cgroup v1; the runtime converts it for v2.
func memory(limit, swap int64, swapAccounting bool) (*specs.LinuxMemory, error) {
	switch {
	case limit < 0:
		return nil, errdefs.InvalidArgument("memory_limit_in_bytes %d is negative", limit)
	case swap < -1:
		return nil, errdefs.InvalidArgument("memory_swap_limit_in_bytes %d is below -1", swap)
	case swap > 0 && limit > 0 && swap < limit:
		return nil, errdefs.InvalidArgument("memory_swap_limit_in_bytes %d is below memory_limit_in_bytes %d: it counts memory plus swap", swap, limit)
	}
	m := &specs.LinuxMemory{}
	if limit != 0 {
		m.Limit = &limit
		if swap == 0 && swapAccounting {
			m.Swap = &limit
		}
	}
	// Without swap accounting the kernel cannot limit swap at all; the
	// request is dropped rather than failing every container on such nodes.
	if swap != 0 && swapAccounting {
		m.Swap = &swap
	}
	if m.Limit == nil && m.Swap == nil {
		return nil, nil
	}
	return m, nil
}

func hugepages(limits []*runtimeapi.HugepageLimit, host HostFacts) ([]specs.LinuxHugepageLimit, error) {
	var out []specs.LinuxHugepageLimit
	seen := map[string]bool{}
	for _, l := range limits {
		size := l.GetPageSize()
		if !slices.Contains(host.HugePageSizes, size) {
			return nil, errdefs.InvalidArgument("hugepage size %q is not supported on this node (have %s)", size, strings.Join(host.HugePageSizes, ", "))
		}
		if seen[size] {
			return nil, errdefs.InvalidArgument("hugepage size %q is limited twice", size)
		}
		seen[size] = true
		out = append(out, specs.LinuxHugepageLimit{Pagesize: size, Limit: l.GetLimit()})
	}
	// kubelet sends a limit for every page size the kernel has, even when
	// the hugetlb controller is not mounted; failing then would fail every
	// container on the node.
	if !host.Hugetlb {
		return nil, nil
	}
	return out, nil
}

func unified(u map[string]string, v2 bool) (map[string]string, error) {
	if len(u) == 0 {
		return nil, nil
	}
	if !v2 {
		return nil, errdefs.InvalidArgument("unified cgroup resources need cgroup v2; this node runs cgroup v1")
	}
	for k := range u {
		// A key names a file in the container's cgroup directory.
		if strings.ContainsAny(k, "/\x00") || !strings.Contains(k, ".") || strings.HasPrefix(k, ".") {
			return nil, errdefs.InvalidArgument("unified cgroup key %q is not a controller file name", k)
		}
	}
	return maps.Clone(u), nil
}

// cpuList checks the kernel's list format: "0-3,8,10-11".
func cpuList(field, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, errA := strconv.ParseUint(lo, 10, 16)
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.ParseUint(hi, 10, 16)
		}
		if errA != nil || errB != nil || b < a {
			return "", errdefs.InvalidArgument("%s %q is not a list like 0-3,8", field, s)
		}
	}
	return s, nil
}

// cgroupsPath names the container's cgroup. cgroupfs takes a path under the
// pod's parent; systemd takes "slice:prefix:name", the slice being the last
// element of the parent kubelet sends.
func cgroupsPath(node *Node, parent, id string) (string, error) {
	switch node.CgroupDriver {
	case "", "cgroupfs":
		if parent == "" {
			parent = node.DefaultCgroupParent
		}
		if parent == "" {
			parent = "/cradle"
		}
		if !path.IsAbs(parent) {
			return "", errdefs.InvalidArgument("cgroup parent %q is not an absolute path, as the cgroupfs driver needs", parent)
		}
		return path.Join(parent, id), nil
	case "systemd":
		if parent == "" {
			parent = node.DefaultCgroupParent
		}
		if parent == "" {
			parent = "system.slice"
		}
		slice := path.Base(parent)
		if !strings.HasSuffix(slice, ".slice") || strings.Contains(slice, ":") {
			return "", errdefs.InvalidArgument("cgroup parent %q is not a systemd slice, as the systemd driver needs (is kubelet's cgroupDriver cgroupfs?)", parent)
		}
		return slice + ":cradle:" + id, nil
	default:
		return "", errdefs.InvalidArgument("unknown cgroup driver %q: want cgroupfs or systemd", node.CgroupDriver)
	}
}
