package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"github.com/cradle-runtime/cradle/internal/testnet"
)

// podCgroupParent gives a pod its own cgroup, as kubelet does, and removes
// it (in every v1 controller and the unified mirror) after the test: runc
// creates parents but removes only its leaves.
func podCgroupParent(t *testing.T, name string) string {
	parent := fmt.Sprintf("/cradle-it-%s-%d", name, os.Getpid())
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	})
	return parent
}

func TestPodSandboxStatsThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/podstats:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/podstats:1")
	// A bridge and subnet of this test's own: pods of other tests running
	// at the same time on the shared test bridge could get the same IP
	// and receive the traffic meant for this pod.
	d := newDaemonFiles(t, daemonOpts{})
	psNet := testnet.MustLease()
	withNetwork(t, d, psNet.Bridge, psNet.V4.String())
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageName), nil, nil); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(d.dir, "logs")
	plain := podConfig("plain", runtimeapi.NamespaceMode_CONTAINER)
	plain.LogDirectory = logDir
	plainID, err := d.Runtime.RunPodSandbox(ctx, plain, "")
	if err != nil {
		t.Fatal(err)
	}

	// The kubelet way: a pod with a cgroup parent of its own.
	own := podConfig("own", runtimeapi.NamespaceMode_CONTAINER)
	own.LogDirectory = logDir
	own.Linux.CgroupParent = podCgroupParent(t, "own")
	ownID, err := d.Runtime.RunPodSandbox(ctx, own, "")
	if err != nil {
		t.Fatal(err)
	}
	hostNet := podConfig("hostnet", runtimeapi.NamespaceMode_CONTAINER)
	hostNet.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	hostNetID, err := d.Runtime.RunPodSandbox(ctx, hostNet, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range []string{ownID, plainID, hostNetID} {
			_ = d.Runtime.StopPodSandbox(ctx, id)
			_ = d.Runtime.RemovePodSandbox(ctx, id)
		}
	})

	// A CPU burner capped at a fifth of a core, after pinning 8 MiB of
	// tmpfs pages (charged to its cgroup, part of the working set).
	busy := containerConfig("busy", imageName, "sh", "-c",
		`dd if=/dev/zero of=/dev/shm/x bs=1M count=8 && while :; do :; done`)
	busy.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 20000}}
	busyID := startIn(t, d, ownID, own, busy)
	sleepID := startIn(t, d, plainID, plain, containerConfig("sleep", imageName, "sleep", "1000"))

	// Own cgroup: CPU, working set, processes, network; answered from a
	// cache refreshed in the background, so polled.
	var ps *runtimeapi.PodSandboxStats
	eventually(t, 40*time.Second, "pod CPU rate, 8 MiB working set and eth0 counters", func() bool {
		if ps, err = d.Runtime.PodSandboxStats(ctx, ownID); err != nil {
			t.Fatal(err)
		}
		l := ps.GetLinux()
		return l.GetCpu().GetUsageNanoCores().GetValue() > 0 && l.GetMemory().GetWorkingSetBytes().GetValue() > 8<<20 &&
			l.GetNetwork().GetDefaultInterface() != nil
	})
	l := ps.GetLinux()
	if a := ps.GetAttributes(); a.GetId() != ownID || a.GetMetadata().GetName() != "own" || a.GetLabels()["app"] != "own" {
		t.Errorf("attributes = %v", a)
	}
	// Capped at 0.2 cores, plus slack for the sampling window.
	if nc := l.GetCpu().GetUsageNanoCores().GetValue(); nc > 400_000_000 {
		t.Errorf("pod uses %d nanocores under a 0.2 core quota", nc)
	}
	if l.GetProcess().GetProcessCount().GetValue() < 1 {
		t.Errorf("process = %v", l.GetProcess())
	}
	if len(l.GetContainers()) != 1 || l.GetContainers()[0].GetAttributes().GetId() != busyID {
		t.Errorf("containers = %v", l.GetContainers())
	}
	if n := l.GetNetwork(); n.GetDefaultInterface().GetName() != "eth0" || len(n.GetInterfaces()) != 0 || n.GetTimestamp() == 0 {
		t.Errorf("network = %v", n)
	}

	// PSI where the kernel keeps it for cgroups (a unified tree, whole or
	// hybrid, and /proc/pressure), never made up where it does not.
	cs, err := d.Runtime.ContainerStats(ctx, busyID)
	if err != nil {
		t.Fatal(err)
	}
	if hostHasCgroupPSI() {
		if l.GetCpu().GetPsi().GetSome() == nil || l.GetMemory().GetPsi() == nil || l.GetIo().GetPsi() == nil ||
			cs.GetCpu().GetPsi().GetSome() == nil || cs.GetMemory().GetPsi() == nil {
			t.Errorf("no PSI on a host with cgroup PSI: pod cpu %v io %v, container cpu %v", l.GetCpu(), l.GetIo(), cs.GetCpu())
		}
	} else if l.GetCpu().GetPsi() != nil || l.GetIo() != nil || cs.GetCpu().GetPsi() != nil {
		t.Errorf("PSI reported on a host without cgroup PSI: %v %v", l.GetCpu(), cs.GetCpu())
	}

	// Traffic into the pod shows on its eth0 once the loop re-reads it.
	st, err := d.Runtime.PodSandboxStatus(ctx, ownID, false)
	if err != nil {
		t.Fatal(err)
	}
	ip := st.GetStatus().GetNetwork().GetIp()
	rx0, tx0 := l.GetNetwork().GetDefaultInterface().GetRxBytes().GetValue(), l.GetNetwork().GetDefaultInterface().GetTxBytes().GetValue()
	sendTraffic(t, ip)
	var rx, tx uint64
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pod %s eth0: rx %d -> %d, tx %d -> %d", ip, rx0, rx, tx0, tx)
		}
	})
	eventually(t, 40*time.Second, "eth0 rx and tx to grow", func() bool {
		if ps, err = d.Runtime.PodSandboxStats(ctx, ownID); err != nil {
			t.Fatal(err)
		}
		def := ps.GetLinux().GetNetwork().GetDefaultInterface()
		rx, tx = def.GetRxBytes().GetValue(), def.GetTxBytes().GetValue()
		return rx >= rx0+32*1000 && tx > tx0
	})

	// Without a parent of its own a pod is the sum of its containers.
	eventually(t, 40*time.Second, "the plain pod to equal its container", func() bool {
		ps, err := d.Runtime.PodSandboxStats(ctx, plainID)
		if err != nil {
			t.Fatal(err)
		}
		pl := ps.GetLinux()
		cs := pl.GetContainers()
		return len(cs) == 1 && pl.GetCpu() != nil && cs[0].GetCpu() != nil &&
			pl.GetCpu().GetUsageCoreNanoSeconds().GetValue() == cs[0].GetCpu().GetUsageCoreNanoSeconds().GetValue() &&
			pl.GetMemory().GetWorkingSetBytes().GetValue() == cs[0].GetMemory().GetWorkingSetBytes().GetValue() &&
			pl.GetMemory().GetAvailableBytes() == nil && pl.GetProcess().GetProcessCount().GetValue() >= 1
	})

	// A host-network pod has no network of its own to report.
	if ps, err = d.Runtime.PodSandboxStats(ctx, hostNetID); err != nil || ps.GetLinux().GetNetwork() != nil || ps.GetLinux().GetCpu() != nil {
		t.Errorf("host-network pod without containers: %v, %v", ps, err)
	}

	// Filters: none, ID, ID prefix, labels.
	listIDs := func(f *runtimeapi.PodSandboxStatsFilter) string {
		t.Helper()
		list, err := d.Runtime.ListPodSandboxStats(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.GetAttributes().GetId())
		}
		return strings.Join(sorted(out), ",")
	}
	for _, c := range []struct {
		name string
		f    *runtimeapi.PodSandboxStatsFilter
		want []string
	}{
		{"none", nil, []string{ownID, plainID, hostNetID}},
		{"id", &runtimeapi.PodSandboxStatsFilter{Id: ownID}, []string{ownID}},
		{"prefix", &runtimeapi.PodSandboxStatsFilter{Id: plainID[:12]}, []string{plainID}},
		{"label", &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "hostnet"}}, []string{hostNetID}},
		{"label mismatch", &runtimeapi.PodSandboxStatsFilter{Id: ownID, LabelSelector: map[string]string{"app": "plain"}}, nil},
	} {
		if got, want := listIDs(c.f), strings.Join(sorted(c.want), ","); got != want {
			t.Errorf("ListPodSandboxStats(%s) = %s, want %s", c.name, got, want)
		}
	}
	if _, err := d.Runtime.PodSandboxStats(ctx, "0123456789abcdef0123"); status.Code(err) != codes.NotFound {
		t.Errorf("stats of an unknown pod: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStats(ctx, ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("stats without an id: %v", err)
	}

	checkPodMetrics(t, d, ownID, busyID)

	// A stopped pod keeps its attributes and loses CPU, memory, network.
	if err := d.Runtime.StopPodSandbox(ctx, plainID); err != nil {
		t.Fatal(err)
	}
	if ps, err = d.Runtime.PodSandboxStats(ctx, plainID); err != nil {
		t.Fatal(err)
	}
	if l := ps.GetLinux(); l.GetCpu() != nil || l.GetMemory() != nil || l.GetNetwork() != nil || ps.GetAttributes().GetId() != plainID {
		t.Errorf("stopped pod stats = %v", ps)
	}
	for _, c := range ps.GetLinux().GetContainers() {
		if c.GetAttributes().GetId() == sleepID && c.GetCpu() != nil {
			t.Errorf("stopped container reports CPU: %v", c)
		}
	}
}

// checkPodMetrics: every metric is described, every description (but the
// block-I/O ones: the test writes nothing to disk) is produced for the
// running pod, and the values are the pod's.
func checkPodMetrics(t *testing.T, d *daemon, podID, ctrID string) {
	t.Helper()
	ctx := context.Background()
	descs, err := d.Runtime.ListMetricDescriptors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, desc := range descs {
		keys[desc.GetName()] = len(desc.GetLabelKeys())
	}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes",
		"container_network_receive_bytes_total", "container_fs_usage_bytes", "container_memory_rss"} {
		if keys[name] == 0 {
			t.Errorf("%s not described", name)
		}
	}
	all, err := d.Runtime.ListPodSandboxMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pm *runtimeapi.PodSandboxMetrics
	for _, m := range all {
		if m.GetPodSandboxId() == podID {
			pm = m
		}
	}
	if pm == nil {
		t.Fatalf("no metrics for pod %s in %d pods", podID, len(all))
	}
	produced := map[string]bool{}
	value := map[string]uint64{}
	check := func(scope string, ms []*runtimeapi.Metric) {
		for _, m := range ms {
			n, ok := keys[m.GetName()]
			if !ok || n != len(m.GetLabelValues()) {
				t.Errorf("%s metric %s: %d label values, described %v with %d keys", scope, m.GetName(), len(m.GetLabelValues()), ok, n)
			}
			produced[m.GetName()] = true
			value[scope+"/"+m.GetName()+"/"+strings.Join(m.GetLabelValues()[3:], "/")] = m.GetValue().GetValue()
		}
	}
	check("pod", pm.GetMetrics())
	if len(pm.GetContainerMetrics()) != 1 || pm.GetContainerMetrics()[0].GetContainerId() != ctrID {
		t.Fatalf("container metrics = %v", pm.GetContainerMetrics())
	}
	check("ctr", pm.GetContainerMetrics()[0].GetMetrics())
	for name := range keys {
		switch name {
		case "container_blkio_device_usage_total", "container_fs_reads_bytes_total", "container_fs_reads_total",
			"container_fs_writes_bytes_total", "container_fs_writes_total":
			continue
		}
		if !produced[name] {
			t.Errorf("%s described but not produced for a running pod", name)
		}
	}
	if v := value["ctr/container_memory_working_set_bytes/"]; v <= 8<<20 {
		t.Errorf("container working set metric = %d", v)
	}
	if v := value["pod/container_network_receive_bytes_total/eth0"]; v < 32*1000 {
		t.Errorf("pod eth0 receive metric = %d", v)
	}
	if v := value["ctr/container_spec_cpu_quota/"]; v != 20000 {
		t.Errorf("cpu quota metric = %d", v)
	}
	if v := value["ctr/container_processes/"]; v < 1 {
		t.Errorf("processes metric = %d", v)
	}
}

func startIn(t *testing.T, d *daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	return id
}

// sendTraffic sends 32 KB of UDP into the pod and connects to a TCP port,
// whose answer is the pod's transmit.
func sendTraffic(t *testing.T, ip string) {
	t.Helper()
	// Unconnected, so the pod's ICMP "port unreachable" fails no write.
	u, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	dst, err := net.ResolveUDPAddr("udp4", net.JoinHostPort(ip, "9"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	for range 32 {
		if _, err := u.WriteTo(buf, dst); err != nil {
			t.Fatal(err)
		}
	}
	// Refused or not, the pod answers: a reset, or a SYN-ACK.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "1"), 5*time.Second); err == nil {
		c.Close()
	}
}

// withNetwork is withTestNetwork on a bridge and subnet of the caller's.
func withNetwork(t *testing.T, d *daemon, bridge, subnet string) {
	t.Helper()
	for _, bin := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", bin)); err != nil {
			t.Skipf("CNI plugin %s missing (apt-get install containernetworking-plugins)", bin)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cradle-it-%s","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"loopback"}]}`, bridge, bridge, subnet, filepath.Join(d.dir, "ipam"))
	dir := filepath.Join(d.dir, "cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-"+bridge+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
}

func hostHasCgroupPSI() bool {
	if _, err := os.Stat("/proc/pressure/cpu"); err != nil {
		return false
	}
	for _, f := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/unified/cgroup.controllers"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}
