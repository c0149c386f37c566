package cri

import (
	"errors"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/stats"
)

func TestCRIStats(t *testing.T) {
	now := time.Unix(100, 0)
	c := &container.Container{ID: "c1", State: container.Running, Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}, Labels: map[string]string{"l": "1"},
	}}
	smp := &stats.Sample{
		Timestamp: now, HasCgroup: true,
		Cgroup: stats.CgroupStats{CPUUsageNanos: 9, MemoryUsage: 300, WorkingSet: 200, RSS: 100,
			PageFaults: 5, MajorPageFaults: 1, MemoryLimit: 1000, Swap: 7, HasSwap: true},
		NanoCores: 42, HasNanoCores: true,
		FsTimestamp: now.Add(-time.Second), FsBytes: 4096, FsInodes: 3,
	}
	got := criStats(c, smp, "/root/containers")
	if got.Attributes.Id != "c1" || got.Attributes.Metadata.Name != "app" || got.Attributes.Labels["l"] != "1" {
		t.Errorf("attributes = %v", got.Attributes)
	}
	if got.Cpu.Timestamp != now.UnixNano() || got.Cpu.UsageCoreNanoSeconds.Value != 9 || got.Cpu.UsageNanoCores.Value != 42 {
		t.Errorf("cpu = %v", got.Cpu)
	}
	m := got.Memory
	if m.WorkingSetBytes.Value != 200 || m.UsageBytes.Value != 300 || m.RssBytes.Value != 100 ||
		m.PageFaults.Value != 5 || m.MajorPageFaults.Value != 1 || m.AvailableBytes.GetValue() != 800 {
		t.Errorf("memory = %v", m)
	}
	if got.Swap.SwapUsageBytes.Value != 7 {
		t.Errorf("swap = %v", got.Swap)
	}
	if wl := got.WritableLayer; wl.UsedBytes.Value != 4096 || wl.InodesUsed.Value != 3 ||
		wl.FsId.Mountpoint != "/root/containers" || wl.Timestamp != now.Add(-time.Second).UnixNano() {
		t.Errorf("writable layer = %v", wl)
	}

	// Unknown rate, no limit, no swap accounting: absent, not zero.
	smp.HasNanoCores, smp.Cgroup.MemoryLimit, smp.Cgroup.HasSwap = false, 0, false
	got = criStats(c, smp, "/r")
	if got.Cpu.UsageNanoCores != nil || got.Memory.AvailableBytes != nil || got.Swap != nil {
		t.Errorf("unknowns reported: cpu %v memory %v swap %v", got.Cpu, got.Memory, got.Swap)
	}
	// Working set above the limit (possible between reclaim passes) is
	// zero available, not a wrapped huge number.
	smp.Cgroup.MemoryLimit = 150
	if got = criStats(c, smp, "/r"); got.Memory.AvailableBytes.GetValue() != 0 {
		t.Errorf("available over the limit = %v", got.Memory.AvailableBytes)
	}

	c.State = container.Exited
	if got = criStats(c, smp, "/r"); got.Cpu != nil || got.Memory != nil || got.Swap != nil || got.WritableLayer == nil {
		t.Errorf("exited container stats = %v", got)
	}
}

func TestStatsRPCsUnimplementedWithoutCollector(t *testing.T) {
	s := &Server{}
	if _, err := s.ContainerStats(t.Context(), &runtimeapi.ContainerStatsRequest{ContainerId: "x"}); !errors.Is(err, errdefs.ErrUnimplemented) {
		t.Errorf("ContainerStats without containers: %v", err)
	}
	if _, err := s.ListContainerStats(t.Context(), &runtimeapi.ListContainerStatsRequest{}); !errors.Is(err, errdefs.ErrUnimplemented) {
		t.Errorf("ListContainerStats without containers: %v", err)
	}
}
