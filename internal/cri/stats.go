package cri

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/stats"
)

// statsService is the collector and the container resolution it was
// built with.
type statsService struct {
	c       *stats.Collector
	targets *Targets
	metrics []metricDef // described and produced; fixed at start-up
}

// WithStats serves the stats and metrics RPCs from c, whose Targets
// function is t.All and whose Pods function is PodStatsTargets.
func (s *Server) WithStats(c *stats.Collector, t *Targets) *Server {
	s.stats = &statsService{c: c, targets: t, metrics: activeMetrics(c.PSI())}
	return s
}

// containerFsMount names the filesystem of writable layers, the same in
// ImageFsInfo and in every container's stats, so kubelet matches them. Found
// once: stats answer from memory.
func (s *Server) containerFsMount() string {
	s.ctrFsOnce.Do(func() { s.ctrFs = s.containerFsMountpoint() })
	return s.ctrFs
}

// StatsTargets resolves the containers of m for the collector. A
// container's cgroup path never changes, so it is read from its bundle once.
func StatsTargets(m *container.Manager) *Targets {
	return &Targets{m: m, paths: map[string]string{}}
}

// Targets resolves containers to what the stats collector samples.
type Targets struct {
	m     *container.Manager
	mu    sync.Mutex
	paths map[string]string // cgroupsPath by container ID
}

// All is the collector's Targets function: every known container.
func (t *Targets) All() []stats.Target {
	cs := t.m.List(container.Filter{})
	out := make([]stats.Target, 0, len(cs))
	seen := make(map[string]bool, len(cs))
	for i := range cs {
		seen[cs[i].ID] = true
		out = append(out, t.target(cs[i].ID))
	}
	t.mu.Lock()
	for id := range t.paths {
		if !seen[id] {
			delete(t.paths, id)
		}
	}
	t.mu.Unlock()
	return out
}

func (t *Targets) target(id string) stats.Target {
	t.mu.Lock()
	p, ok := t.paths[id]
	t.mu.Unlock()
	if !ok {
		// Without a readable bundle (not written yet, or gone with a reboot's
		// tmpfs) the container has no CPU or memory stats, but still its
		// layer's. Only a real answer is cached: the bundle may appear.
		var err error
		if p, err = t.m.CgroupsPath(id); err == nil {
			t.mu.Lock()
			t.paths[id] = p
			t.mu.Unlock()
		}
	}
	return stats.Target{ID: id, CgroupsPath: p, WritableLayer: t.m.WritableLayer(id)}
}

func (s *Server) statsEnabled(rpc string) error {
	if err := s.containersEnabled(rpc); err != nil {
		return err
	}
	if s.stats == nil {
		return errdefs.New(errdefs.ErrUnimplemented, "%s: stats are not enabled in this daemon", rpc)
	}
	return nil
}

// ContainerStats answers from the collector's cache.
func (s *Server) ContainerStats(_ context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	if err := s.statsEnabled("ContainerStats"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" {
		return nil, errdefs.InvalidArgument("ContainerStats: container_id is required")
	}
	c, err := s.containers.Status(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st, err := s.containerStats(&c)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats answers for the containers the filter selects.
// Containers whose sampling fails are left out rather than failing the
// whole list: one odd container must not blind kubelet to the rest. The
// samples are the collector's (at most its interval old); the answer is
// encoded again only when a container or a sample changed (listcache.go).
func (s *Server) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	items, err := s.containerStatsItems("ListContainerStats", req.GetFilter())
	if err != nil {
		return nil, err
	}
	return withItems(&runtimeapi.ListContainerStatsResponse{}, items), nil
}

// containerStatsItems are ListContainerStats' items, encoded.
func (s *Server) containerStatsItems(rpc string, rf *runtimeapi.ContainerStatsFilter) (rawItems, error) {
	if err := s.statsEnabled(rpc); err != nil {
		return rawItems{}, err
	}
	f := container.Filter{}
	if rf != nil {
		f.ID, f.SandboxID, f.Labels = rf.Id, rf.PodSandboxId, rf.LabelSelector
	}
	key, err := filterKey(rf)
	if err != nil {
		return rawItems{}, err
	}
	// The collector's generation comes after the containers': a sample
	// taken for a container listed here is newer than the list.
	gens := [3]uint64{s.containers.Generation(), s.stats.c.Generation()}
	if items, ok := s.lists.ctrStats.get(key, gens, nil); ok {
		return items, nil
	}
	cs := s.containers.List(f)
	smps := make([]stats.Sample, 0, len(cs))
	kept := cs[:0]
	for i := range cs {
		smp, err := s.stats.c.Get(s.stats.targets.target(cs[i].ID))
		if err != nil {
			s.log.Warn("container stats unavailable", "id", cs[i].ID, "err", err)
			continue
		}
		kept = append(kept, cs[i])
		smps = append(smps, smp)
	}
	all := f.ID == "" && f.SandboxID == "" && len(f.Labels) == 0
	fsMount := s.containerFsMount()
	items, err := s.lists.ctrStatItems.assemble(len(kept), all,
		func(i int) (string, itemKey) {
			return kept[i].ID, itemKey{ver: kept[i].Version, t1: uint64(smps[i].Timestamp.UnixNano()), t2: uint64(smps[i].FsTimestamp.UnixNano())}
		},
		func(i int) proto.Message { return criStats(&kept[i], &smps[i], fsMount) })
	if err != nil {
		return rawItems{}, err
	}
	s.lists.ctrStats.put(key, respKey{gens: gens}, items)
	return items, nil
}

func (s *Server) containerStats(c *container.Container) (*runtimeapi.ContainerStats, error) {
	smp, err := s.stats.c.Get(s.stats.targets.target(c.ID))
	if err != nil {
		return nil, err
	}
	return criStats(c, &smp, s.containerFsMount()), nil
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// criStats maps a sample to CRI. CPU and memory are omitted unless the
// container runs: a created one holds only runc's init and an exited one's
// cgroup may linger until removal, and kubelet reads absent as "no usage to
// account", where zeros or stale totals would mislead it.
func criStats(c *container.Container, smp *stats.Sample, fsMount string) *runtimeapi.ContainerStats {
	out := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{
			Id: c.ID, Metadata: c.Config.GetMetadata(),
			Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		},
	}
	if !smp.FsTimestamp.IsZero() {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  smp.FsTimestamp.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: fsMount},
			UsedBytes:  u64(smp.FsBytes),
			InodesUsed: u64(smp.FsInodes),
		}
	}
	if !smp.HasCgroup || c.State != container.Running {
		return out
	}
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
		avail := uint64(0)
		if cg.MemoryLimit > cg.WorkingSet {
			avail = cg.MemoryLimit - cg.WorkingSet
		}
		out.Memory.AvailableBytes = u64(avail)
	}
	if cg.HasSwap {
		out.Swap = &runtimeapi.SwapUsage{Timestamp: ts, SwapUsageBytes: u64(cg.Swap)}
	}
	if smp.HasDetail {
		out.Cpu.Psi, out.Memory.Psi, out.Io = pressure(ts, &smp.Detail)
	}
	return out
}

// pressure maps a cgroup's PSI; each is nil where the kernel keeps none
// (a v1-only host), never zeros that would read as "no stalls".
func pressure(ts int64, d *stats.Detail) (cpu, mem *runtimeapi.PsiStats, io *runtimeapi.IoUsage) {
	if p := criPSI(d.IOPressure); p != nil {
		io = &runtimeapi.IoUsage{Timestamp: ts, Psi: p}
	}
	return criPSI(d.CPUPressure), criPSI(d.MemoryPressure), io
}

func criPSI(p *stats.PSI) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	data := func(d *stats.PSIData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: d.TotalNanos, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	out := &runtimeapi.PsiStats{Some: data(&p.Some)}
	if p.HasFull {
		out.Full = data(&p.Full)
	}
	return out
}
