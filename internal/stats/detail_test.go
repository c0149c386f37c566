package stats

import (
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// v1DetailTree is a v1 cgroup /pod/c1 with every file ReadDetail reads;
// cgroup.procs names this test process, whose open files are real.
func v1DetailTree(t *testing.T) string {
	t.Helper()
	root := v1Tree(t, "104857600", true)
	self := strconv.Itoa(os.Getpid()) + "\n"
	writeFiles(t, root, map[string]string{
		"cpuacct/pod/c1/cpuacct.stat":                            "user 150\nsystem 25\n",
		"cpu/pod/c1/cpu.stat":                                    "nr_periods 40\nnr_throttled 3\nthrottled_time 2500000000\n",
		"cpu/pod/c1/cpu.shares":                                  "512\n",
		"cpu/pod/c1/cpu.cfs_period_us":                           "100000\n",
		"cpu/pod/c1/cpu.cfs_quota_us":                            "20000\n",
		"memory/pod/c1/memory.stat":                              "total_cache 7000\ntotal_mapped_file 600\ntotal_rss 1\n",
		"memory/pod/c1/memory.max_usage_in_bytes":                "90000000\n",
		"memory/pod/c1/memory.failcnt":                           "4\n",
		"memory/pod/c1/memory.kmem.usage_in_bytes":               "3000\n",
		"memory/pod/c1/memory.oom_control":                       "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
		"memory/pod/c1/memory.memsw.limit_in_bytes":              "9223372036854771712\n",
		"pids/pod/c1/pids.max":                                   "max\n",
		"pids/pod/c1/cgroup.procs":                               self,
		"pids/pod/c1/tasks":                                      self + "1\n",
		"pids/pod/c1/sub/cgroup.procs":                           self,
		"pids/pod/c1/sub/tasks":                                  self,
		"blkio/pod/c1/blkio.throttle.io_service_bytes_recursive": "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n",
		"blkio/pod/c1/blkio.throttle.io_serviced_recursive":      "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
	})
	return root
}

func TestReadDetailV1(t *testing.T) {
	d, err := Hierarchy{Root: v1DetailTree(t)}.ReadDetail("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.CPUUserNanos != 1_500_000_000 || d.CPUSystemNanos != 250_000_000 {
		t.Errorf("user/system = %d/%d", d.CPUUserNanos, d.CPUSystemNanos)
	}
	if d.CFSPeriods != 40 || d.CFSThrottledPeriods != 3 || d.CFSThrottledNanos != 2_500_000_000 {
		t.Errorf("cfs = %d %d %d", d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos)
	}
	if d.CPUShares != 512 || d.CPUPeriod != 100000 || d.CPUQuota != 20000 {
		t.Errorf("cpu spec = %d %d %d", d.CPUShares, d.CPUPeriod, d.CPUQuota)
	}
	if d.Cache != 7000 || d.MappedFile != 600 || d.KernelUsage != 3000 || d.MaxUsage != 90000000 || !d.HasMaxUsage ||
		d.Failcnt != 4 || d.OOMKills != 2 {
		t.Errorf("memory detail = %+v", d)
	}
	if d.SwapLimit != 0 || d.PidsMax != 0 {
		t.Errorf("unlimited swap/pids read as %d/%d", d.SwapLimit, d.PidsMax)
	}
	// Two cgroups (c1 and its child) each list this process once.
	if p := d.Procs; p.Processes != 2 || p.Threads != 3 || p.FDs < 6 {
		t.Errorf("processes = %+v", p)
	}
	if len(d.IO) != 1 || d.IO[0] != (DeviceIO{Major: 8, Minor: 0, Device: d.IO[0].Device, ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}) {
		t.Errorf("io = %+v", d.IO)
	}
	if d.CPUPressure != nil {
		t.Errorf("pressure without PSI: %+v", d.CPUPressure)
	}
}

func v2DetailTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := "kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/"
	writeFiles(t, root, map[string]string{
		"cgroup.controllers":    "cpu memory pids io\n",
		dir + "cpu.stat":        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 10\nnr_throttled 1\nthrottled_usec 300\n",
		dir + "cpu.max":         "50000 100000\n",
		dir + "cpu.weight":      "39\n",
		dir + "memory.stat":     "anon 1\nfile 5000\nfile_mapped 70\nkernel 900\n",
		dir + "memory.peak":     "123456\n",
		dir + "memory.events":   "low 0\nhigh 0\nmax 6\noom 1\noom_kill 1\n",
		dir + "memory.swap.max": "max\n",
		dir + "pids.max":        "4096\n",
		dir + "cgroup.procs":    "",
		dir + "cgroup.threads":  "",
		dir + "io.stat":         "259:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n",
	})
	return root
}

func TestReadDetailV2(t *testing.T) {
	d, err := Hierarchy{Root: v2DetailTree(t), V2: true}.ReadDetail("kubepods-besteffort.slice:cradle:c1")
	if err != nil {
		t.Fatal(err)
	}
	if d.CPUUserNanos != 2_000_000 || d.CFSThrottledNanos != 300_000 || d.CPUQuota != 50000 || d.CPUPeriod != 100000 {
		t.Errorf("cpu = %+v", d)
	}
	// runc writes weight 39 for 1024 shares; integer division makes the
	// way back land a little short.
	if d.CPUShares != 998 {
		t.Errorf("shares from weight 39 = %d", d.CPUShares)
	}
	if d.Cache != 5000 || d.MappedFile != 70 || d.KernelUsage != 900 || d.MaxUsage != 123456 || d.Failcnt != 6 || d.OOMKills != 1 {
		t.Errorf("memory = %+v", d)
	}
	if d.PidsMax != 4096 || d.SwapLimit != 0 || d.Procs != (ProcessStats{}) {
		t.Errorf("limits/procs = %d %d %+v", d.PidsMax, d.SwapLimit, d.Procs)
	}
	if len(d.IO) != 1 || d.IO[0].Major != 259 || d.IO[0].ReadBytes != 100 || d.IO[0].Writes != 4 {
		t.Errorf("io = %+v", d.IO)
	}
}

func TestReadDetailFailures(t *testing.T) {
	if _, err := (Hierarchy{Root: t.TempDir()}).ReadDetail("/pod/gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing cgroup: %v", err)
	}
	root := v1DetailTree(t)
	writeFiles(t, root, map[string]string{"cpu/pod/c1/cpu.cfs_quota_us": "lots\n"})
	if _, err := (Hierarchy{Root: root}).ReadDetail("/pod/c1"); err == nil || errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("corrupt quota: %v", err)
	}
	root = v2DetailTree(t)
	writeFiles(t, root, map[string]string{"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/io.stat": "8:0 rbytes=x\n"})
	if _, err := (Hierarchy{Root: root, V2: true}).ReadDetail("kubepods-besteffort.slice:cradle:c1"); err == nil {
		t.Error("corrupt io.stat accepted")
	}
	if _, err := (Hierarchy{Root: root, V2: true}).ReadDetail("../escape"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad path: %v", err)
	}
}

func TestSystemdSliceParent(t *testing.T) {
	got, err := cgroupDir("kubepods-burstable-pod1.slice")
	if want := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"; err != nil || got != want {
		t.Fatalf("pod slice = %q, %v; want %q", got, err, want)
	}
	if _, err := cgroupDir("kubepods--x.slice"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("malformed slice: %v", err)
	}
}

// Sample is Read and ReadDetail in one pass; details that cannot be read
// leave the stats standing.
func TestSampleReadsStatsAndDetailTogether(t *testing.T) {
	root := v1DetailTree(t)
	h := Hierarchy{Root: root}
	s, err := h.Sample("/pod/c1", true)
	if err != nil || s.DetailErr != nil {
		t.Fatal(err, s.DetailErr)
	}
	stats, err := h.Read("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.ReadDetail("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Stats != stats || s.Detail.Cache != d.Cache || s.Detail.CPUShares != d.CPUShares || s.Detail.OOMKills != d.OOMKills {
		t.Fatalf("Sample = %+v\nwant stats %+v and detail %+v", s, stats, d)
	}

	if err := os.Remove(root + "/cpuacct/pod/c1/cpuacct.stat"); err != nil {
		t.Fatal(err)
	}
	s, err = h.Sample("/pod/c1", true)
	if err != nil || s.DetailErr == nil || s.Stats != stats {
		t.Fatalf("without cpuacct.stat: %+v, %v; want the stats and a detail error", s, err)
	}
	if _, err := h.Sample("/pod/gone", true); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing cgroup: %v", err)
	}
}

// A light sample (what stats calls need) reads the stats, the process
// counts and pressure, and none of the metrics-only figures.
func TestLightSampleSkipsMetricsOnlyFigures(t *testing.T) {
	root := v1DetailTree(t)
	h := Hierarchy{Root: root}
	full, err := h.Sample("/pod/c1", true)
	if err != nil || full.DetailErr != nil || !full.Detail.Full {
		t.Fatalf("full sample: %+v, %v", full, err)
	}
	light, err := h.Sample("/pod/c1", false)
	if err != nil || light.DetailErr != nil {
		t.Fatal(err, light.DetailErr)
	}
	d := light.Detail
	switch {
	case d.Full:
		t.Fatal("light sample says it is full")
	case light.Stats != full.Stats:
		t.Fatalf("light stats %+v, full %+v", light.Stats, full.Stats)
	case d.Procs.Processes != full.Detail.Procs.Processes || d.Procs.Threads != full.Detail.Procs.Threads:
		t.Fatalf("light process counts %+v, full %+v", d.Procs, full.Detail.Procs)
	case d.Procs.FDs != 0 || d.Procs.Sockets != 0 || d.Cache != 0 || d.CPUShares != 0 || d.OOMKills != 0 || d.IO != nil:
		t.Fatalf("light sample read metrics-only figures: %+v", d)
	}
	// Even a broken metrics-only file leaves the light sample whole.
	if err := os.Remove(root + "/cpuacct/pod/c1/cpuacct.stat"); err != nil {
		t.Fatal(err)
	}
	if light, err = h.Sample("/pod/c1", false); err != nil || light.DetailErr != nil {
		t.Fatalf("light sample without cpuacct.stat: %v, %v", err, light.DetailErr)
	}
}
