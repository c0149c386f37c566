package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const statsTS = int64(1_700_000_000_000_000_000)

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// fixtureCtrStats: ctrA runs (rate 25% from the runtime), ctrB has exited
// (no CPU, no memory).
func fixtureCtrStats() []*runtimeapi.ContainerStats {
	return []*runtimeapi.ContainerStats{
		{
			Attributes:    &runtimeapi.ContainerAttributes{Id: ctrB, Metadata: &runtimeapi.ContainerMetadata{Name: "sidecar"}},
			Cpu:           &runtimeapi.CpuUsage{Timestamp: statsTS, UsageCoreNanoSeconds: u64(0)},
			Memory:        &runtimeapi.MemoryUsage{Timestamp: statsTS, WorkingSetBytes: u64(0)},
			WritableLayer: &runtimeapi.FilesystemUsage{UsedBytes: u64(4096), InodesUsed: u64(2)},
		},
		{
			Attributes: &runtimeapi.ContainerAttributes{Id: ctrA, Metadata: &runtimeapi.ContainerMetadata{Name: "nginx"},
				Labels: map[string]string{"tier": "front"}},
			Cpu:           &runtimeapi.CpuUsage{Timestamp: statsTS, UsageCoreNanoSeconds: u64(5_000_000_000), UsageNanoCores: u64(250_000_000)},
			Memory:        &runtimeapi.MemoryUsage{Timestamp: statsTS, WorkingSetBytes: u64(12_345_678)},
			WritableLayer: &runtimeapi.FilesystemUsage{UsedBytes: u64(1_500_000), InodesUsed: u64(37)},
			Swap:          &runtimeapi.SwapUsage{SwapUsageBytes: u64(2048)},
		},
	}
}

func newStatsFake(t *testing.T) (*fakeCRI, string) {
	f, ep := newRuntimeFake(t)
	f.mu.Lock()
	f.st.ctrStats = fixtureCtrStats()
	f.mu.Unlock()
	return f, ep
}

func TestStatsTable(t *testing.T) {
	t.Parallel()
	f, ep := newStatsFake(t)
	w := []int{20, 20, 20, 20, 20, 20}
	header := row(w, "CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP")
	nginx := row(w, "c1aa000000000", "nginx", "25.00", "12.35MB", "1.5MB", "37", "2.048kB")
	sidecar := row(w, "c1bb000000000", "sidecar", "0.00", "0B", "4.096kB", "2", "0B")

	// -s 0: one sample, the runtime's own rate; exited containers hidden.
	r := runCLI(t, ep, "stats", "-s", "0")
	mustSucceed(t, r)
	if want := header + nginx; r.stdout != want {
		t.Errorf("stats:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, ep, "stats", "-a", "-s", "0")
	mustSucceed(t, r)
	if want := header + nginx + sidecar; r.stdout != want {
		t.Errorf("stats -a:\n%s\nwant:\n%s", r.stdout, want)
	}
	if n := len(requests(f, &f.st.ctrStatsReqs)); n != 2 {
		t.Errorf("-s 0 made %d list calls, want 1 per run", n)
	}

	// Two samples a second apart: the rate comes from their difference
	// (the fake adds 0.5 s of CPU per second), not from the runtime's.
	f.mu.Lock()
	f.st.statsTick = 1_000_000_000
	f.mu.Unlock()
	r = runCLI(t, ep, "stats", "--seconds", "1")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "50.00") {
		t.Errorf("two-sample CPU %%:\n%s", r.stdout)
	}
}

func TestStatsCPUPercent(t *testing.T) {
	t.Parallel()
	cpu := func(ts int64, used uint64, nanoCores *runtimeapi.UInt64Value) *runtimeapi.CpuUsage {
		return &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: u64(used), UsageNanoCores: nanoCores}
	}
	for _, tc := range []struct {
		name     string
		old, cur *runtimeapi.CpuUsage
		want     string
	}{
		{"two samples", cpu(0, 1e9, nil), cpu(2e9, 4e9, u64(1)), "150.00"},
		{"not running", cpu(0, 0, nil), cpu(1e9, 0, nil), "0.00"},
		{"same sample: runtime rate", cpu(5, 1e9, nil), cpu(5, 1e9, u64(125_000_000)), "12.50"},
		{"same sample, no rate", cpu(5, 1e9, nil), cpu(5, 1e9, nil), "-"},
		{"counter went back", cpu(0, 9e9, nil), cpu(1e9, 1e9, nil), "-"},
		{"no old sample", nil, cpu(1e9, 1e9, u64(1e9)), "100.00"},
	} {
		if got := cpuPercent(tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestStatsFiltersAndFormats(t *testing.T) {
	t.Parallel()
	f, ep := newStatsFake(t)

	r := runCLI(t, ep, "stats", "-o", "json", "c1a")
	mustSucceed(t, r)
	var doc struct {
		Stats []struct {
			Attributes struct {
				ID string `json:"id"`
			} `json:"attributes"`
			Memory struct {
				WorkingSetBytes struct {
					Value string `json:"value"`
				} `json:"workingSetBytes"`
			} `json:"memory"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if len(doc.Stats) != 1 || doc.Stats[0].Attributes.ID != ctrA || doc.Stats[0].Memory.WorkingSetBytes.Value != "12345678" {
		t.Errorf("stats -o json: %+v", doc)
	}
	// The prefix was resolved to the full ID before the stats call.
	reqs := requests(f, &f.st.ctrStatsReqs)
	want := &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{Id: ctrA}}
	if len(reqs) != 1 || !proto.Equal(reqs[0], want) {
		t.Errorf("requests %v, want %v", reqs, want)
	}

	r = runCLI(t, ep, "stats", "-o", "yaml", "--pod", "aa1", "--label", "tier=front")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "stats:\n- attributes:\n") || !strings.Contains(r.stdout, "name: nginx") {
		t.Errorf("stats -o yaml:\n%s", r.stdout)
	}
	reqs = requests(f, &f.st.ctrStatsReqs)
	want = &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{
		PodSandboxId: podA, LabelSelector: map[string]string{"tier": "front"}}}
	if !proto.Equal(reqs[len(reqs)-1], want) {
		t.Errorf("request %v, want %v", reqs[len(reqs)-1], want)
	}

	n := len(requests(f, &f.st.ctrStatsReqs))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stats", "-o", "wide"}, `unsupported output format "wide"`},
		{[]string{"stats", "-s", "-1"}, "--seconds must not be negative"},
		{[]string{"stats", "--label", "tier"}, `--label "tier": want KEY=VALUE`},
		{[]string{"stats", "--id", ctrA, ctrB}, "either as an argument or with --id"},
		{[]string{"stats", ctrA, ctrB}, "takes at most 1 argument"},
		{[]string{"stats", "zz"}, `no such container "zz"`},
		{[]string{"stats", "c1"}, "ambiguous"},
		{[]string{"stats", "--pod", "zz"}, `no such pod sandbox "zz"`},
		{[]string{"statsp", "-o", "table", "-s", "-2"}, "--seconds must not be negative"},
		{[]string{"statsp", "zz"}, `no such pod sandbox "zz"`},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.want)
	}
	if got := len(requests(f, &f.st.ctrStatsReqs)) + len(requests(f, &f.st.podStatsReqs)); got != n {
		t.Errorf("bad command lines made %d stats calls", got-n)
	}
}

func TestStatsWatchRefreshesUntilInterrupted(t *testing.T) {
	t.Parallel()
	f, ep := newStatsFake(t)
	env, out, _ := testEnv()
	stop := startCLI(t, env, ep, "stats", "-w", "-o", "json")
	waitUntil(t, "a second refresh", func() bool { return strings.Count(out.String(), `"stats"`) >= 2 })
	r := stop()
	if r.code != 0 {
		t.Errorf("Ctrl-C ended watch with %d: %s", r.code, r.stderr)
	}
	// Each refresh is a whole document, and nothing clears a non-terminal.
	if strings.Contains(r.stdout, "\033[") {
		t.Errorf("escape sequences written to a pipe")
	}
	if n := len(requests(f, &f.st.ctrStatsReqs)); n < 2 {
		t.Errorf("%d stats calls, want one per refresh", n)
	}
}

func fixturePodStats(network bool) []*runtimeapi.PodSandboxStats {
	web := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: podA, Metadata: &runtimeapi.PodSandboxMetadata{Name: "web"},
			Labels: map[string]string{"app": "web"}},
		Linux: &runtimeapi.LinuxPodSandboxStats{
			Cpu:    &runtimeapi.CpuUsage{Timestamp: statsTS, UsageCoreNanoSeconds: u64(9e9), UsageNanoCores: u64(1_500_000_000)},
			Memory: &runtimeapi.MemoryUsage{WorkingSetBytes: u64(64_000_000)},
		},
	}
	if network {
		web.Linux.Network = &runtimeapi.NetworkUsage{Timestamp: statsTS, DefaultInterface: &runtimeapi.NetworkInterfaceUsage{
			Name: "eth0", RxBytes: u64(1_234_567), TxBytes: u64(89_000)}}
	}
	stopped := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: podB, Metadata: &runtimeapi.PodSandboxMetadata{Name: "db"}},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	return []*runtimeapi.PodSandboxStats{stopped, web}
}

func TestStatsp(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	f.mu.Lock()
	f.st.podStats = fixturePodStats(false)
	f.mu.Unlock()
	w := []int{20, 20, 20}
	r := runCLI(t, ep, "statsp", "-s", "0")
	mustSucceed(t, r)
	want := row(w, "POD", "POD ID", "CPU %", "MEM") + row(w, "web", "aa11000000000", "150.00", "64MB")
	if r.stdout != want {
		t.Errorf("statsp:\n%s\nwant:\n%s", r.stdout, want)
	}

	f.mu.Lock()
	f.st.podStats = fixturePodStats(true)
	f.mu.Unlock()
	r = runCLI(t, ep, "statsp", "-s", "0", "--label", "app=web")
	mustSucceed(t, r)
	w = []int{20, 20, 20, 20, 20}
	want = row(w, "POD", "POD ID", "CPU %", "MEM", "NET RX", "NET TX") +
		row(w, "web", "aa11000000000", "150.00", "64MB", "1.235MB", "89kB")
	if r.stdout != want {
		t.Errorf("statsp with network:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, ep, "statsp", "-o", "json", "aa1")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, `"rxBytes": {`) || !strings.Contains(r.stdout, `"name": "web"`) {
		t.Errorf("statsp -o json:\n%s", r.stdout)
	}
	reqs := requests(f, &f.st.podStatsReqs)
	wantReqs := []*runtimeapi.ListPodSandboxStatsRequest{
		{Filter: &runtimeapi.PodSandboxStatsFilter{}},
		{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "web"}}},
		{Filter: &runtimeapi.PodSandboxStatsFilter{Id: podA}},
	}
	if len(reqs) != len(wantReqs) {
		t.Fatalf("requests %v", reqs)
	}
	for i := range reqs {
		if !proto.Equal(reqs[i], wantReqs[i]) {
			t.Errorf("request %d: %v, want %v", i, reqs[i], wantReqs[i])
		}
	}
}

func TestStatspRuntimeError(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.mu.Lock()
	f.st.statsErr = status.Error(codes.Unimplemented, "pod stats are not served")
	f.mu.Unlock()
	mustFail(t, runCLI(t, ep, "statsp", "-s", "0"), "Error: list pod sandbox stats: pod stats are not served\n")
}
