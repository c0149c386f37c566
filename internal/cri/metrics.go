package cri

import (
	"context"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/stats"
)

// The metrics of kubelet's /metrics/cadvisor, with cadvisor's names and
// labels, so dashboards and alerts written for cadvisor keep working when
// kubelet takes them from the runtime (PodAndContainerStatsFromCRI).
// kubelet appends namespace, pod and container itself; cradle supplies
// cadvisor's id, name and image, then each metric's own labels.
//
// Values are UInt64 in CRI: *_seconds metrics are whole seconds, the
// finest the API can carry in the unit their names promise.

var baseLabels = []string{"id", "name", "image"}

// metricScope says which sample a metric is computed from.
type metricScope int

const (
	cgroupScope    metricScope = iota // a running container's cgroup, or a pod's own
	containerScope                    // a container only (writable layer, start time)
	networkScope                      // a pod's network namespace
)

// metricInput is one object's sample, as the emitters read it.
type metricInput struct {
	ts     time.Time
	cg     *stats.CgroupStats
	detail *stats.Detail // nil when the details could not be read
	ctr    *container.Container
	smp    *stats.Sample // containers only
	net    []stats.Interface
	pod    bool
	fsDev  string
}

// emit adds one value with the metric's own label values.
type emit func(v uint64, labels ...string)

type metricDef struct {
	name, help string
	labels     []string // after baseLabels
	typ        runtimeapi.MetricType
	scope      metricScope
	psi        bool // described only where the kernel keeps PSI
	values     func(in *metricInput, add emit)
}

const (
	counter = runtimeapi.MetricType_COUNTER
	gauge   = runtimeapi.MetricType_GAUGE
)

func secs(ns uint64) uint64 { return ns / uint64(time.Second) }

// withDetail runs f only when the cgroup's details were read.
func withDetail(f func(d *stats.Detail, in *metricInput, add emit)) func(*metricInput, emit) {
	return func(in *metricInput, add emit) {
		if in.detail != nil {
			f(in.detail, in, add)
		}
	}
}

func psiDef(name, help string, get func(d *stats.Detail) *stats.PSI, full bool) metricDef {
	return metricDef{name: name, help: help, typ: counter, scope: cgroupScope, psi: true,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) {
			p := get(d)
			switch {
			case p == nil:
			case !full:
				add(secs(p.Some.TotalNanos))
			case p.HasFull:
				add(secs(p.Full.TotalNanos))
			}
		})}
}

func netDef(name, help string, get func(i *stats.Interface) uint64) metricDef {
	return metricDef{name: name, help: help, labels: []string{"interface"}, typ: counter, scope: networkScope,
		values: func(in *metricInput, add emit) {
			for i := range in.net {
				add(get(&in.net[i]), in.net[i].Name)
			}
		}}
}

func ioDef(name, help string, get func(d *stats.DeviceIO) uint64) metricDef {
	return metricDef{name: name, help: help, labels: []string{"device"}, typ: counter, scope: cgroupScope,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) {
			for i := range d.IO {
				add(get(&d.IO[i]), d.IO[i].Device)
			}
		})}
}

func detailGauge(name, help string, get func(d *stats.Detail) uint64) metricDef {
	return metricDef{name: name, help: help, typ: gauge, scope: cgroupScope,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) { add(get(d)) })}
}

func detailCounter(name, help string, get func(d *stats.Detail) uint64) metricDef {
	m := detailGauge(name, help, get)
	m.typ = counter
	return m
}

var cadvisorMetrics = []metricDef{
	{name: "container_cpu_usage_seconds_total", help: "Cumulative cpu time consumed in seconds.", typ: counter, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(secs(in.cg.CPUUsageNanos)) }},
	detailCounter("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",
		func(d *stats.Detail) uint64 { return secs(d.CPUUserNanos) }),
	detailCounter("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
		func(d *stats.Detail) uint64 { return secs(d.CPUSystemNanos) }),
	detailCounter("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
		func(d *stats.Detail) uint64 { return d.CFSPeriods }),
	detailCounter("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
		func(d *stats.Detail) uint64 { return d.CFSThrottledPeriods }),
	detailCounter("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.",
		func(d *stats.Detail) uint64 { return secs(d.CFSThrottledNanos) }),

	{name: "container_memory_usage_bytes", help: "Current memory usage in bytes, including all memory regardless of when it was accessed.", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(in.cg.MemoryUsage) }},
	{name: "container_memory_working_set_bytes", help: "Current working set in bytes.", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(in.cg.WorkingSet) }},
	{name: "container_memory_rss", help: "Size of RSS in bytes.", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(in.cg.RSS) }},
	{name: "container_memory_swap", help: "Container swap usage in bytes.", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) {
			if in.cg.HasSwap {
				add(in.cg.Swap)
			}
		}},
	detailGauge("container_memory_cache", "Number of bytes of page cache memory.",
		func(d *stats.Detail) uint64 { return d.Cache }),
	detailGauge("container_memory_mapped_file", "Size of memory mapped files in bytes.",
		func(d *stats.Detail) uint64 { return d.MappedFile }),
	detailGauge("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.",
		func(d *stats.Detail) uint64 { return d.KernelUsage }),
	{name: "container_memory_max_usage_bytes", help: "Maximum memory usage recorded in bytes.", typ: gauge, scope: cgroupScope,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) {
			if d.HasMaxUsage {
				add(d.MaxUsage)
			}
		})},
	detailCounter("container_memory_failcnt", "Number of memory usage hits limits.",
		func(d *stats.Detail) uint64 { return d.Failcnt }),
	{name: "container_memory_failures_total", help: "Cumulative count of memory allocation failures.",
		labels: []string{"failure_type", "scope"}, typ: counter, scope: cgroupScope,
		values: func(in *metricInput, add emit) {
			// The counters include descendants; a container's cgroup has
			// none, so for it they are its own as well.
			scopes := []string{"hierarchy"}
			if !in.pod {
				scopes = append(scopes, "container")
			}
			for _, sc := range scopes {
				add(in.cg.PageFaults, "pgfault", sc)
				add(in.cg.MajorPageFaults, "pgmajfault", sc)
			}
		}},
	detailCounter("container_oom_events_total", "Count of out of memory events observed for the container.",
		func(d *stats.Detail) uint64 { return d.OOMKills }),

	{name: "container_spec_memory_limit_bytes", help: "Memory limit for the container (0: unlimited).", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(in.cg.MemoryLimit) }},
	detailGauge("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container (0: unlimited).",
		func(d *stats.Detail) uint64 { return d.SwapLimit }),
	detailGauge("container_spec_cpu_period", "CPU period of the container.",
		func(d *stats.Detail) uint64 { return d.CPUPeriod }),
	{name: "container_spec_cpu_quota", help: "CPU quota of the container.", typ: gauge, scope: cgroupScope,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) {
			if d.CPUQuota > 0 {
				add(uint64(d.CPUQuota))
			}
		})},
	detailGauge("container_spec_cpu_shares", "CPU share of the container.",
		func(d *stats.Detail) uint64 { return d.CPUShares }),

	detailGauge("container_processes", "Number of processes running inside the container.",
		func(d *stats.Detail) uint64 { return d.Procs.Processes }),
	detailGauge("container_threads", "Number of threads running inside the container.",
		func(d *stats.Detail) uint64 { return d.Procs.Threads }),
	detailGauge("container_threads_max", "Maximum number of threads allowed inside the container (0: unlimited).",
		func(d *stats.Detail) uint64 { return d.PidsMax }),
	detailGauge("container_file_descriptors", "Number of open file descriptors for the container.",
		func(d *stats.Detail) uint64 { return d.Procs.FDs }),
	detailGauge("container_sockets", "Number of open sockets for the container.",
		func(d *stats.Detail) uint64 { return d.Procs.Sockets }),

	{name: "container_blkio_device_usage_total", help: "Blkio device bytes usage.",
		labels: []string{"device", "major", "minor", "operation"}, typ: counter, scope: cgroupScope,
		values: withDetail(func(d *stats.Detail, _ *metricInput, add emit) {
			for i := range d.IO {
				io := &d.IO[i]
				maj, mnr := strconv.FormatUint(io.Major, 10), strconv.FormatUint(io.Minor, 10)
				add(io.ReadBytes, io.Device, maj, mnr, "Read")
				add(io.WriteBytes, io.Device, maj, mnr, "Write")
			}
		})},
	ioDef("container_fs_reads_bytes_total", "Cumulative count of bytes read.", func(d *stats.DeviceIO) uint64 { return d.ReadBytes }),
	ioDef("container_fs_reads_total", "Cumulative count of reads completed.", func(d *stats.DeviceIO) uint64 { return d.Reads }),
	ioDef("container_fs_writes_bytes_total", "Cumulative count of bytes written.", func(d *stats.DeviceIO) uint64 { return d.WriteBytes }),
	ioDef("container_fs_writes_total", "Cumulative count of writes completed.", func(d *stats.DeviceIO) uint64 { return d.Writes }),

	psiDef("container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have waited due to CPU congestion.",
		func(d *stats.Detail) *stats.PSI { return d.CPUPressure }, false),
	psiDef("container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to CPU congestion.",
		func(d *stats.Detail) *stats.PSI { return d.CPUPressure }, true),
	psiDef("container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have waited due to memory congestion.",
		func(d *stats.Detail) *stats.PSI { return d.MemoryPressure }, false),
	psiDef("container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to memory congestion.",
		func(d *stats.Detail) *stats.PSI { return d.MemoryPressure }, true),
	psiDef("container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have waited due to IO congestion.",
		func(d *stats.Detail) *stats.PSI { return d.IOPressure }, false),
	psiDef("container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could make progress due to IO congestion.",
		func(d *stats.Detail) *stats.PSI { return d.IOPressure }, true),

	{name: "container_last_seen", help: "Last time a container was seen by the exporter.", typ: gauge, scope: cgroupScope,
		values: func(in *metricInput, add emit) { add(uint64(in.ts.Unix())) }},

	{name: "container_fs_usage_bytes", help: "Number of bytes that are consumed by the container on this filesystem.",
		labels: []string{"device"}, typ: gauge, scope: containerScope,
		values: func(in *metricInput, add emit) {
			if !in.smp.FsTimestamp.IsZero() {
				add(in.smp.FsBytes, in.fsDev)
			}
		}},
	fsInfoDef("container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.",
		func(f *stats.FsInfo) uint64 { return f.CapacityBytes }),
	fsInfoDef("container_fs_inodes_total", "Number of Inodes.", func(f *stats.FsInfo) uint64 { return f.InodesTotal }),
	fsInfoDef("container_fs_inodes_free", "Number of available Inodes.", func(f *stats.FsInfo) uint64 { return f.InodesFree }),
	{name: "container_start_time_seconds", help: "Start time of the container since unix epoch in seconds.", typ: gauge, scope: containerScope,
		values: func(in *metricInput, add emit) {
			if in.ctr.State == container.Running {
				add(uint64(in.ctr.StartedAt.Unix()))
			}
		}},

	netDef("container_network_receive_bytes_total", "Cumulative count of bytes received.", func(i *stats.Interface) uint64 { return i.RxBytes }),
	netDef("container_network_receive_packets_total", "Cumulative count of packets received.", func(i *stats.Interface) uint64 { return i.RxPackets }),
	netDef("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", func(i *stats.Interface) uint64 { return i.RxErrors }),
	netDef("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", func(i *stats.Interface) uint64 { return i.RxDrops }),
	netDef("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", func(i *stats.Interface) uint64 { return i.TxBytes }),
	netDef("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", func(i *stats.Interface) uint64 { return i.TxPackets }),
	netDef("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", func(i *stats.Interface) uint64 { return i.TxErrors }),
	netDef("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", func(i *stats.Interface) uint64 { return i.TxDrops }),
}

func fsInfoDef(name, help string, get func(f *stats.FsInfo) uint64) metricDef {
	return metricDef{name: name, help: help, labels: []string{"device"}, typ: gauge, scope: containerScope,
		values: func(in *metricInput, add emit) {
			if in.smp.HasFs {
				add(get(&in.smp.Fs), in.fsDev)
			}
		}}
}

// activeMetrics are the metrics this daemon describes and produces, fixed
// at start-up as ListMetricDescriptors requires.
func activeMetrics(psi bool) []metricDef {
	out := make([]metricDef, 0, len(cadvisorMetrics))
	for _, m := range cadvisorMetrics {
		if !m.psi || psi {
			out = append(out, m)
		}
	}
	return out
}

// ListMetricDescriptors describes every metric ListPodSandboxMetrics
// produces.
func (s *Server) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	if err := s.podStatsEnabled("ListMetricDescriptors"); err != nil {
		return nil, err
	}
	return &runtimeapi.ListMetricDescriptorsResponse{Descriptors: descriptors(s.stats.metrics)}, nil
}

func descriptors(ms []metricDef) []*runtimeapi.MetricDescriptor {
	out := make([]*runtimeapi.MetricDescriptor, 0, len(ms))
	for _, m := range ms {
		out = append(out, &runtimeapi.MetricDescriptor{
			Name: m.name, Help: m.help, LabelKeys: append(append([]string(nil), baseLabels...), m.labels...),
		})
	}
	return out
}

// ListPodSandboxMetrics answers for every ready pod from the collector's
// cache: the pod's network and its own cgroup at pod level, each
// container's cgroup and writable layer below it.
func (s *Server) ListPodSandboxMetrics(context.Context, *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	if err := s.podStatsEnabled("ListPodSandboxMetrics"); err != nil {
		return nil, err
	}
	pods := s.pods.List(sandbox.Filter{State: sandbox.Ready})
	byPod := containersByPod(s.containers.List(container.Filter{}))
	resp := &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: make([]*runtimeapi.PodSandboxMetrics, 0, len(pods))}
	for i := range pods {
		pm, err := s.podMetrics(&pods[i], byPod[pods[i].ID])
		if err != nil {
			s.log.Warn("pod metrics unavailable", "id", pods[i].ID, "err", err)
			continue
		}
		resp.PodMetrics = append(resp.PodMetrics, pm)
	}
	return resp, nil
}

func (s *Server) podMetrics(sb *sandbox.Sandbox, cs []container.Container) (*runtimeapi.PodSandboxMetrics, error) {
	smp, err := s.stats.c.PodFull(podTarget(sb, cs))
	if err != nil {
		return nil, err
	}
	out := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
	base := []string{sb.ID, sb.Metadata().GetName(), ""}
	if smp.HasNetwork {
		in := &metricInput{ts: smp.NetTimestamp, net: smp.Network, pod: true}
		out.Metrics = s.metricsOf(networkScope, in, base, out.Metrics)
	}
	// A summed pod has no cgroup of its own: its containers' series are
	// all there is, as under cadvisor.
	if smp.HasCgroup && !smp.Summed {
		in := &metricInput{ts: smp.Timestamp, cg: &smp.Cgroup, pod: true}
		if smp.HasDetail {
			in.detail = &smp.Detail
		}
		out.Metrics = s.metricsOf(cgroupScope, in, base, out.Metrics)
	}
	for i := range cs {
		c := &cs[i]
		cm, err := s.containerMetrics(c)
		if err != nil {
			s.log.Warn("container metrics unavailable", "id", c.ID, "err", err)
			continue
		}
		out.ContainerMetrics = append(out.ContainerMetrics, cm)
	}
	return out, nil
}

func (s *Server) containerMetrics(c *container.Container) (*runtimeapi.ContainerMetrics, error) {
	smp, err := s.stats.c.GetFull(s.stats.targets.target(c.ID))
	if err != nil {
		return nil, err
	}
	base := []string{c.ID, c.Config.GetMetadata().GetName(), c.ImageName}
	out := &runtimeapi.ContainerMetrics{ContainerId: c.ID}
	in := &metricInput{ts: smp.FsTimestamp, ctr: c, smp: &smp, fsDev: s.containerFsMount()}
	out.Metrics = s.metricsOf(containerScope, in, base, out.Metrics)
	// As in ContainerStats: CPU and memory only while the container runs.
	if smp.HasCgroup && c.State == container.Running {
		in.ts, in.cg = smp.Timestamp, &smp.Cgroup
		if smp.HasDetail {
			in.detail = &smp.Detail
		}
		out.Metrics = s.metricsOf(cgroupScope, in, base, out.Metrics)
	}
	return out, nil
}

// metricsOf appends the values of every active metric of scope.
func (s *Server) metricsOf(scope metricScope, in *metricInput, base []string, out []*runtimeapi.Metric) []*runtimeapi.Metric {
	return appendMetrics(s.stats.metrics, scope, in, base, out)
}

func appendMetrics(ms []metricDef, scope metricScope, in *metricInput, base []string, out []*runtimeapi.Metric) []*runtimeapi.Metric {
	ts := in.ts.UnixNano()
	for i := range ms {
		m := &ms[i]
		if m.scope != scope {
			continue
		}
		m.values(in, func(v uint64, labels ...string) {
			out = append(out, &runtimeapi.Metric{
				Name: m.name, Timestamp: ts, MetricType: m.typ,
				LabelValues: append(append(make([]string, 0, len(base)+len(labels)), base...), labels...),
				Value:       u64(v),
			})
		})
	}
	return out
}
