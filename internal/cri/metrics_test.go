package cri

import (
	"slices"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/stats"
)

// fullInputs are samples with every figure present, as on a v2 host with
// PSI: each active metric must then produce at least one value.
func fullInputs(now time.Time) (ctr, podCgroup, podNet *metricInput) {
	psi := &stats.PSI{Some: stats.PSIData{TotalNanos: 3e9}, Full: stats.PSIData{TotalNanos: 2e9}, HasFull: true}
	d := &stats.Detail{
		CPUUserNanos: 2e9, CPUSystemNanos: 1e9, CFSPeriods: 10, CFSThrottledPeriods: 2, CFSThrottledNanos: 5e9,
		Cache: 1, MappedFile: 2, KernelUsage: 3, MaxUsage: 4, HasMaxUsage: true, Failcnt: 5, OOMKills: 6,
		CPUShares: 1024, CPUPeriod: 100000, CPUQuota: 20000, SwapLimit: 7, PidsMax: 8,
		Procs:       stats.ProcessStats{Processes: 2, Threads: 3, FDs: 9, Sockets: 1},
		CPUPressure: psi, MemoryPressure: psi, IOPressure: psi,
		IO: []stats.DeviceIO{{Major: 8, Minor: 0, Device: "/dev/sda", ReadBytes: 1, WriteBytes: 2, Reads: 3, Writes: 4}},
	}
	smp := &stats.Sample{
		Timestamp: now, HasCgroup: true, HasDetail: true, Detail: *d,
		Cgroup:      stats.CgroupStats{CPUUsageNanos: 7e9, MemoryUsage: 100, WorkingSet: 90, RSS: 80, PageFaults: 70, MajorPageFaults: 1, MemoryLimit: 1000, Swap: 5, HasSwap: true},
		FsTimestamp: now, FsBytes: 4096, FsInodes: 2, HasFs: true,
		Fs: stats.FsInfo{CapacityBytes: 1 << 30, InodesTotal: 1000, InodesFree: 900},
	}
	c := &container.Container{ID: "c1", State: container.Running, StartedAt: now.Add(-time.Minute)}
	ctr = &metricInput{ts: now, cg: &smp.Cgroup, detail: d, ctr: c, smp: smp, fsDev: "/var/lib/cradle/containers"}
	podCgroup = &metricInput{ts: now, cg: &smp.Cgroup, detail: d, pod: true}
	podNet = &metricInput{ts: now, pod: true, net: []stats.Interface{{Name: "eth0", RxBytes: 10, TxBytes: 20}, {Name: "net1", RxBytes: 1}}}
	return ctr, podCgroup, podNet
}

func produce(ms []metricDef, now time.Time) []*runtimeapi.Metric {
	ctr, podCg, podNet := fullInputs(now)
	base := []string{"id", "name", "image"}
	out := appendMetrics(ms, containerScope, ctr, base, nil)
	out = appendMetrics(ms, cgroupScope, ctr, base, out)
	out = appendMetrics(ms, cgroupScope, podCg, base, out)
	return appendMetrics(ms, networkScope, podNet, base, out)
}

// TestDescriptorsMatchProducedMetrics: kubelet drops a metric it has no
// descriptor for, and critest fails a descriptor that is never produced or
// whose label keys and values differ in number.
func TestDescriptorsMatchProducedMetrics(t *testing.T) {
	for _, psi := range []bool{true, false} {
		ms := activeMetrics(psi)
		descs := map[string]*runtimeapi.MetricDescriptor{}
		for _, d := range descriptors(ms) {
			if d.Help == "" || len(d.LabelKeys) < 3 || descs[d.Name] != nil {
				t.Errorf("psi=%v: bad or duplicate descriptor %v", psi, d)
			}
			descs[d.Name] = d
		}
		produced := map[string]bool{}
		for _, m := range produce(ms, time.Unix(1000, 0)) {
			d := descs[m.Name]
			if d == nil {
				t.Errorf("psi=%v: %s produced without a descriptor", psi, m.Name)
				continue
			}
			if len(m.LabelValues) != len(d.LabelKeys) {
				t.Errorf("psi=%v: %s has %d label values for keys %v", psi, m.Name, len(m.LabelValues), d.LabelKeys)
			}
			if m.Timestamp != time.Unix(1000, 0).UnixNano() || m.Value == nil {
				t.Errorf("psi=%v: %s timestamp %d value %v", psi, m.Name, m.Timestamp, m.Value)
			}
			produced[m.Name] = true
		}
		for name := range descs {
			if !produced[name] {
				t.Errorf("psi=%v: %s described but never produced", psi, name)
			}
		}
		_, hasPSI := descs["container_pressure_cpu_stalled_seconds_total"]
		if hasPSI != psi {
			t.Errorf("psi=%v: pressure described = %v", psi, hasPSI)
		}
	}
}

// TestCadvisorNamesCovered: the names kubelet's /metrics/cadvisor has
// (critest's list), but hugetlb and ulimits, which cradle does not read.
func TestCadvisorNamesCovered(t *testing.T) {
	have := map[string]bool{}
	for _, d := range descriptors(activeMetrics(true)) {
		have[d.Name] = true
	}
	for _, name := range []string{
		"container_blkio_device_usage_total", "container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_periods_total",
		"container_cpu_cfs_throttled_seconds_total", "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total",
		"container_cpu_user_seconds_total", "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
		"container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total", "container_fs_usage_bytes",
		"container_fs_writes_bytes_total", "container_fs_writes_total", "container_last_seen", "container_memory_cache",
		"container_memory_failcnt", "container_memory_failures_total", "container_memory_kernel_usage",
		"container_memory_mapped_file", "container_memory_max_usage_bytes", "container_memory_rss", "container_memory_swap",
		"container_memory_usage_bytes", "container_memory_working_set_bytes", "container_network_receive_bytes_total",
		"container_network_receive_errors_total", "container_network_receive_packets_dropped_total",
		"container_network_receive_packets_total", "container_network_transmit_bytes_total",
		"container_network_transmit_errors_total", "container_network_transmit_packets_dropped_total",
		"container_network_transmit_packets_total", "container_oom_events_total",
		"container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
		"container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
		"container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
		"container_processes", "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota",
		"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes",
		"container_start_time_seconds", "container_threads", "container_threads_max",
	} {
		if !have[name] {
			t.Errorf("%s not described", name)
		}
	}
}

func TestMetricValues(t *testing.T) {
	now := time.Unix(1000, 0)
	byKey := map[string]uint64{}
	for _, m := range produce(activeMetrics(true), now) {
		byKey[m.Name+"/"+slices.Concat(m.LabelValues[3:], []string{""})[0]] = m.Value.Value
	}
	for key, want := range map[string]uint64{
		"container_cpu_usage_seconds_total/":                  7, // whole seconds
		"container_cpu_cfs_throttled_seconds_total/":          5,
		"container_memory_working_set_bytes/":                 90,
		"container_network_receive_bytes_total/eth0":          10,
		"container_network_transmit_bytes_total/eth0":         20,
		"container_network_receive_bytes_total/net1":          1,
		"container_fs_usage_bytes//var/lib/cradle/containers": 4096,
		"container_fs_inodes_free//var/lib/cradle/containers": 900,
		"container_pressure_cpu_stalled_seconds_total/":       2,
		"container_pressure_io_waiting_seconds_total/":        3,
		"container_start_time_seconds/":                       uint64(now.Add(-time.Minute).Unix()),
		"container_spec_cpu_quota/":                           20000,
		"container_memory_failures_total/pgmajfault":          1,
		"container_blkio_device_usage_total//dev/sda":         2, // the Write series comes last
	} {
		if got, ok := byKey[key]; !ok || got != want {
			t.Errorf("%s = %d (present %v), want %d", key, got, ok, want)
		}
	}

	// Absent figures produce nothing rather than zeros.
	ctr, _, _ := fullInputs(now)
	ctr.detail.CPUPressure, ctr.detail.CPUQuota, ctr.cg.HasSwap = &stats.PSI{Some: stats.PSIData{TotalNanos: 1}}, -1, false
	ctr.detail.HasMaxUsage = false
	for _, m := range appendMetrics(activeMetrics(true), cgroupScope, ctr, []string{"a", "b", "c"}, nil) {
		switch m.Name {
		case "container_pressure_cpu_stalled_seconds_total", "container_spec_cpu_quota", "container_memory_swap", "container_memory_max_usage_bytes":
			t.Errorf("%s produced from an absent figure", m.Name)
		}
	}
	ctr.detail = nil
	for _, m := range appendMetrics(activeMetrics(true), cgroupScope, ctr, []string{"a", "b", "c"}, nil) {
		switch m.Name {
		case "container_memory_working_set_bytes", "container_cpu_usage_seconds_total", "container_memory_usage_bytes",
			"container_memory_rss", "container_memory_failures_total", "container_spec_memory_limit_bytes", "container_last_seen":
		default:
			t.Errorf("%s produced without cgroup details", m.Name)
		}
	}
}
