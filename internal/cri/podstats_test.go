package cri

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/stats"
)

func TestFillPodStats(t *testing.T) {
	now := time.Unix(100, 0)
	psi := &stats.PSI{Some: stats.PSIData{TotalNanos: 5, Avg10: 1.5}}
	smp := &stats.PodSample{
		Timestamp: now, HasCgroup: true,
		Cgroup:    stats.CgroupStats{CPUUsageNanos: 9, MemoryUsage: 300, WorkingSet: 200, RSS: 100, MemoryLimit: 1000},
		NanoCores: 7, HasNanoCores: true,
		HasDetail: true, Detail: stats.Detail{Procs: stats.ProcessStats{Processes: 4}, MemoryPressure: psi},
		NetTimestamp: now.Add(time.Second), HasNetwork: true,
		Network: []stats.Interface{{Name: "a0", RxBytes: 1}, {Name: "eth0", RxBytes: 10, TxBytes: 20, RxErrors: 1, TxErrors: 2}},
	}
	var out runtimeapi.LinuxPodSandboxStats
	fillPodStats(&out, smp)
	if out.Cpu.UsageCoreNanoSeconds.Value != 9 || out.Cpu.UsageNanoCores.Value != 7 || out.Cpu.Timestamp != now.UnixNano() {
		t.Errorf("cpu = %v", out.Cpu)
	}
	if m := out.Memory; m.WorkingSetBytes.Value != 200 || m.AvailableBytes.GetValue() != 800 || m.RssBytes.Value != 100 {
		t.Errorf("memory = %v", m)
	}
	if out.Process.ProcessCount.Value != 4 {
		t.Errorf("process = %v", out.Process)
	}
	// PSI only where the kernel gave it: memory here, neither CPU nor IO.
	if out.Memory.Psi.GetSome().GetTotal() != 5 || out.Memory.Psi.Full != nil || out.Cpu.Psi != nil || out.Io != nil {
		t.Errorf("psi: cpu %v memory %v io %v", out.Cpu.Psi, out.Memory.Psi, out.Io)
	}
	n := out.Network
	if n.Timestamp != now.Add(time.Second).UnixNano() || n.DefaultInterface.Name != "eth0" ||
		n.DefaultInterface.RxBytes.Value != 10 || n.DefaultInterface.TxErrors.Value != 2 ||
		len(n.Interfaces) != 1 || n.Interfaces[0].Name != "a0" {
		t.Errorf("network = %v", n)
	}

	// A summed pod (no cgroup of its own) has no limit, so no available
	// figure; a host-network pod has no network of its own.
	smp.Summed, smp.HasDetail, smp.Cgroup.MemoryLimit, smp.HasNetwork, smp.HasNanoCores = true, false, 0, false, false
	out = runtimeapi.LinuxPodSandboxStats{}
	fillPodStats(&out, smp)
	if out.Memory.AvailableBytes != nil || out.Network != nil || out.Cpu.UsageNanoCores != nil || out.Memory.Psi != nil {
		t.Errorf("summed/host-network pod: memory %v network %v cpu %v", out.Memory, out.Network, out.Cpu)
	}
	if out.Process.GetProcessCount().GetValue() != 4 {
		t.Errorf("summed process count = %v", out.Process)
	}

	// No cgroup yet (no container started): nothing but what exists.
	out = runtimeapi.LinuxPodSandboxStats{}
	fillPodStats(&out, &stats.PodSample{})
	if out.Cpu != nil || out.Memory != nil || out.Process != nil || out.Network != nil {
		t.Errorf("empty pod: %v", &out)
	}
}

func TestPodTarget(t *testing.T) {
	sb := &sandbox.Sandbox{ID: "p1", NetNS: "/run/cradle/pods/p1/ns/net",
		Config: &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "/kubepods/podu1"}}}
	cs := []container.Container{{ID: "run", State: container.Running}, {ID: "made", State: container.Created}, {ID: "done", State: container.Exited}}
	got := podTarget(sb, cs)
	if got.ID != "p1" || got.CgroupsPath != "/kubepods/podu1" || got.NetNS != sb.NetNS ||
		len(got.Containers) != 1 || got.Containers[0] != "run" {
		t.Errorf("target = %+v", got)
	}
	sb.Config, sb.NetNS = &runtimeapi.PodSandboxConfig{}, ""
	if got = podTarget(sb, nil); got.CgroupsPath != "" || got.NetNS != "" {
		t.Errorf("host-network pod without parent: %+v", got)
	}
}
