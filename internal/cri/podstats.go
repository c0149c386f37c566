package cri

import (
	"context"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/stats"
)

// PodStatsTargets is the collector's Pods function: every ready pod with
// its containers, read from the managers' memory.
func PodStatsTargets(pods *sandbox.Manager, containers *container.Manager) func() []stats.PodTarget {
	return func() []stats.PodTarget {
		byPod := containersByPod(containers.List(container.Filter{}))
		sbs := pods.List(sandbox.Filter{State: sandbox.Ready})
		out := make([]stats.PodTarget, 0, len(sbs))
		for i := range sbs {
			out = append(out, podTarget(&sbs[i], byPod[sbs[i].ID]))
		}
		return out
	}
}

func containersByPod(cs []container.Container) map[string][]container.Container {
	out := map[string][]container.Container{}
	for _, c := range cs {
		out[c.SandboxID] = append(out[c.SandboxID], c)
	}
	return out
}

// podTarget: the pod's cgroup is kubelet's cgroup_parent, which holds the
// pod's containers and nothing of other pods. Without one the containers
// sit under the daemon's default parent, shared by every pod, so the pod
// is the sum of its containers.
func podTarget(sb *sandbox.Sandbox, cs []container.Container) stats.PodTarget {
	t := stats.PodTarget{ID: sb.ID, CgroupsPath: sb.Config.GetLinux().GetCgroupParent(), NetNS: sb.NetNS}
	if t.CgroupsPath == "" && sb.Sandboxed {
		// A sandboxed runtime charges the whole sandbox to its sandbox
		// container's cgroup; the containers' own hold next to nothing.
		t.CgroupsPath = sb.SandboxCgroup
	}
	for i := range cs {
		if cs[i].State == container.Running {
			t.Containers = append(t.Containers, cs[i].ID)
		}
	}
	return t
}

func (s *Server) podStatsEnabled(rpc string) error {
	if s.pods == nil {
		return errdefs.New(errdefs.ErrUnimplemented, "%s: pods are not enabled in this daemon", rpc)
	}
	return s.statsEnabled(rpc)
}

// PodSandboxStats answers from the collector's cache.
func (s *Server) PodSandboxStats(_ context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	if err := s.podStatsEnabled("PodSandboxStats"); err != nil {
		return nil, err
	}
	if req.PodSandboxId == "" {
		return nil, errdefs.InvalidArgument("PodSandboxStats: pod_sandbox_id is required")
	}
	sb, err := s.pods.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st, err := s.podStats(&sb, s.containers.List(container.Filter{SandboxID: sb.ID}))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: st}, nil
}

// ListPodSandboxStats answers for the pods the filter selects (an ID or a
// prefix of one, and labels, as ListPodSandbox). A pod whose sampling
// fails is left out, as in ListContainerStats. The answer is encoded again
// only when a pod, a container or a sample changed (listcache.go).
func (s *Server) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	items, err := s.podSandboxStatsItems("ListPodSandboxStats", req.GetFilter())
	if err != nil {
		return nil, err
	}
	return withItems(&runtimeapi.ListPodSandboxStatsResponse{}, items), nil
}

// podSandboxStatsItems are ListPodSandboxStats' items, encoded.
func (s *Server) podSandboxStatsItems(rpc string, rf *runtimeapi.PodSandboxStatsFilter) (rawItems, error) {
	if err := s.podStatsEnabled(rpc); err != nil {
		return rawItems{}, err
	}
	f := sandbox.Filter{}
	if rf != nil {
		f.ID, f.LabelSelector = rf.Id, rf.LabelSelector
	}
	key, err := filterKey(rf)
	if err != nil {
		return rawItems{}, err
	}
	gens := [3]uint64{s.pods.Generation(), s.containers.Generation(), s.stats.c.Generation()}
	if items, ok := s.lists.podStats.get(key, gens, nil); ok {
		return items, nil
	}
	pods := s.pods.ListShared(f)
	var byPod map[string][]container.Container
	if len(pods) == 1 { // kubelet asks pod by pod too: list only its containers
		byPod = map[string][]container.Container{pods[0].ID: s.containers.List(container.Filter{SandboxID: pods[0].ID})}
	} else {
		byPod = containersByPod(s.containers.List(container.Filter{}))
	}
	var out rawItems
	for _, sb := range pods {
		st, err := s.podStats(sb, byPod[sb.ID])
		if err != nil {
			s.log.Warn("pod stats unavailable", "id", sb.ID, "err", err)
			continue
		}
		b, err := proto.Marshal(st)
		if err != nil {
			return rawItems{}, err
		}
		out.buf = protowire.AppendTag(out.buf, 1, protowire.BytesType)
		out.buf = protowire.AppendBytes(out.buf, b)
		out.ends = append(out.ends, len(out.buf))
	}
	s.lists.podStats.put(key, respKey{gens: gens}, out)
	return out, nil
}

func (s *Server) podStats(sb *sandbox.Sandbox, cs []container.Container) (*runtimeapi.PodSandboxStats, error) {
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{
			Id: sb.ID, Metadata: sb.Metadata(), Labels: sb.Labels(), Annotations: sb.Annotations(),
		},
		Linux: &runtimeapi.LinuxPodSandboxStats{},
	}
	for i := range cs {
		st, err := s.containerStats(&cs[i])
		if err != nil {
			s.log.Warn("container stats unavailable", "id", cs[i].ID, "err", err)
			continue
		}
		out.Linux.Containers = append(out.Linux.Containers, st)
	}
	// A stopped pod has released its network and its containers' CPU and
	// memory: like a stopped container, it reports none rather than stale
	// totals.
	if sb.State != sandbox.Ready {
		return out, nil
	}
	smp, err := s.stats.c.Pod(podTarget(sb, cs))
	if err != nil {
		return nil, err
	}
	fillPodStats(out.Linux, &smp)
	return out, nil
}

func fillPodStats(out *runtimeapi.LinuxPodSandboxStats, smp *stats.PodSample) {
	if smp.HasCgroup {
		ts := smp.Timestamp.UnixNano()
		cg := &smp.Cgroup
		out.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(cg.CPUUsageNanos)}
		if smp.HasNanoCores {
			out.Cpu.UsageNanoCores = u64(smp.NanoCores)
		}
		out.Memory = &runtimeapi.MemoryUsage{
			Timestamp: ts, WorkingSetBytes: u64(cg.WorkingSet), UsageBytes: u64(cg.MemoryUsage),
			RssBytes: u64(cg.RSS), PageFaults: u64(cg.PageFaults), MajorPageFaults: u64(cg.MajorPageFaults),
		}
		if cg.MemoryLimit > 0 {
			out.Memory.AvailableBytes = u64(sub(cg.MemoryLimit, cg.WorkingSet))
		}
		if smp.HasDetail || smp.Summed {
			out.Process = &runtimeapi.ProcessUsage{Timestamp: ts, ProcessCount: u64(smp.Detail.Procs.Processes)}
		}
		if smp.HasDetail {
			out.Cpu.Psi, out.Memory.Psi, out.Io = pressure(ts, &smp.Detail)
		}
	}
	// Host-network pods have no namespace of their own (HasNetwork is
	// false): the node's interfaces are the node's stats, and reporting
	// them for every host-network pod would count the node's traffic once
	// per such pod in kubelet's sums.
	if smp.HasNetwork {
		out.Network = criNetwork(smp)
	}
}

// criNetwork puts the pod's CNI interface (cradle always names it eth0)
// first as the default; a pod with other interfaces (e.g. added by a
// chained plugin) lists them too.
func criNetwork(smp *stats.PodSample) *runtimeapi.NetworkUsage {
	out := &runtimeapi.NetworkUsage{Timestamp: smp.NetTimestamp.UnixNano()}
	def := -1
	for i := range smp.Network {
		if smp.Network[i].Name == cni.IfName {
			def = i
		}
	}
	if def < 0 && len(smp.Network) > 0 {
		def = 0
	}
	for i := range smp.Network {
		n := &smp.Network[i]
		u := &runtimeapi.NetworkInterfaceUsage{
			Name: n.Name, RxBytes: u64(n.RxBytes), RxErrors: u64(n.RxErrors),
			TxBytes: u64(n.TxBytes), TxErrors: u64(n.TxErrors),
		}
		if i == def {
			out.DefaultInterface = u
		} else {
			out.Interfaces = append(out.Interfaces, u)
		}
	}
	return out
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
