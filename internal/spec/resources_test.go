package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func u64p(v uint64) *uint64 { return &v }

func TestResources(t *testing.T) {
	in, _ := testInput()
	in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000,
		CpusetCpus: "0-1,3", CpusetMems: "0",
		MemoryLimitInBytes: 256 << 20,
		HugepageLimits:     []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}, {PageSize: "1GB", Limit: 0}},
		OomScoreAdj:        999,
	}
	got := mustBuild(t, in).Linux.Resources
	want := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		CPU: &specs.LinuxCPU{
			Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Cpus: "0-1,3", Mems: "0",
		},
		// No swap limit asked: swap is pinned to the memory limit.
		Memory:         &specs.LinuxMemory{Limit: i64p(256 << 20), Swap: i64p(256 << 20)},
		HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 0}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("resources (-want +got):\n%s", diff)
	}
}

func TestMemoryAndSwap(t *testing.T) {
	for _, c := range []struct {
		name        string
		limit, swap int64
		accounting  bool
		want        *specs.LinuxMemory
	}{
		{"nothing", 0, 0, true, nil},
		{"limit pins swap", 100, 0, true, &specs.LinuxMemory{Limit: i64p(100), Swap: i64p(100)}},
		{"explicit swap", 100, 300, true, &specs.LinuxMemory{Limit: i64p(100), Swap: i64p(300)}},
		{"unlimited swap", 100, -1, true, &specs.LinuxMemory{Limit: i64p(100), Swap: i64p(-1)}},
		{"no accounting drops swap", 100, 300, false, &specs.LinuxMemory{Limit: i64p(100)}},
		{"swap alone", 0, 300, true, &specs.LinuxMemory{Swap: i64p(300)}},
		{"swap alone without accounting", 0, 300, false, nil},
	} {
		got, err := memory(c.limit, c.swap, c.accounting)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestResourceErrors(t *testing.T) {
	v2 := testHost()
	v2.CgroupV2 = true
	cases := []struct {
		name   string
		res    *runtimeapi.LinuxContainerResources
		host   HostFacts
		substr string
	}{
		{"negative shares", &runtimeapi.LinuxContainerResources{CpuShares: -2}, testHost(), "cpu_shares"},
		{"negative period", &runtimeapi.LinuxContainerResources{CpuPeriod: -1}, testHost(), "cpu_period"},
		{"quota below -1", &runtimeapi.LinuxContainerResources{CpuQuota: -2}, testHost(), "cpu_quota"},
		{"bad cpuset", &runtimeapi.LinuxContainerResources{CpusetCpus: "0-"}, testHost(), `cpuset_cpus "0-"`},
		{"reversed cpuset", &runtimeapi.LinuxContainerResources{CpusetCpus: "3-1"}, testHost(), "cpuset_cpus"},
		{"junk mems", &runtimeapi.LinuxContainerResources{CpusetMems: "a"}, testHost(), "cpuset_mems"},
		{"empty cpuset item", &runtimeapi.LinuxContainerResources{CpusetCpus: "0,,1"}, testHost(), "cpuset_cpus"},
		{"negative memory", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: -1}, testHost(), "memory_limit_in_bytes"},
		{"swap below -1", &runtimeapi.LinuxContainerResources{MemorySwapLimitInBytes: -5}, testHost(), "memory_swap_limit_in_bytes"},
		{"swap below memory", &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 200, MemorySwapLimitInBytes: 100}, testHost(), "memory plus swap"},
		{"unknown page size", &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "4MB"}}}, testHost(), `"4MB" is not supported`},
		{"page size twice", &runtimeapi.LinuxContainerResources{HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}, {PageSize: "2MB"}}}, testHost(), "twice"},
		{"unified on v1", &runtimeapi.LinuxContainerResources{Unified: map[string]string{"memory.high": "1G"}}, testHost(), "cgroup v1"},
		{"unified path escape", &runtimeapi.LinuxContainerResources{Unified: map[string]string{"../../x.y": "1"}}, v2, "not a controller file"},
		{"unified no dot", &runtimeapi.LinuxContainerResources{Unified: map[string]string{"cgroup": "1"}}, v2, "not a controller file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := buildResources(c.res, c.host)
			wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
		})
	}
}

func TestResourcesHostDependent(t *testing.T) {
	res := &runtimeapi.LinuxContainerResources{
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "1073741824", "io.weight": "default 100"},
		CpuQuota:       -1,
	}
	v2 := testHost()
	v2.CgroupV2 = true
	got, err := buildResources(res, v2)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got.Unified, res.Unified) || len(got.HugepageLimits) != 1 || *got.CPU.Quota != -1 {
		t.Fatalf("v2 resources = %+v", got)
	}
	res.Unified["memory.high"] = "changed"
	if got.Unified["memory.high"] == "changed" {
		t.Fatal("spec shares the request's unified map")
	}

	// Without the hugetlb controller the limits are left out.
	noHugetlb := testHost()
	noHugetlb.Hugetlb = false
	res.Unified = nil
	got, err = buildResources(res, noHugetlb)
	if err != nil || got.HugepageLimits != nil {
		t.Fatalf("no hugetlb controller: %+v, %v", got.HugepageLimits, err)
	}
}

func TestCgroupsPath(t *testing.T) {
	cases := []struct {
		driver, defaultParent, parent string
		want                          string
	}{
		{"", "", "/kubepods/burstable/pod1", "/kubepods/burstable/pod1/c1"},
		{"cgroupfs", "", "", "/cradle/c1"},
		{"cgroupfs", "/system/cradle", "", "/system/cradle/c1"},
		{"cgroupfs", "", "/kubepods.slice", "/kubepods.slice/c1"},
		{"systemd", "", "kubepods-burstable-pod1.slice", "kubepods-burstable-pod1.slice:cradle:c1"},
		{"systemd", "", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "kubepods-burstable-pod1.slice:cradle:c1"},
		{"systemd", "", "", "system.slice:cradle:c1"},
		{"systemd", "machine.slice", "", "machine.slice:cradle:c1"},
	}
	for _, c := range cases {
		got, err := cgroupsPath(&Node{CgroupDriver: c.driver, DefaultCgroupParent: c.defaultParent}, c.parent, "c1")
		if err != nil || got != c.want {
			t.Errorf("%s %q: %q, %v; want %q", c.driver, c.parent, got, err, c.want)
		}
	}
	for _, c := range []struct{ driver, parent, substr string }{
		{"cgroupfs", "kubepods", "not an absolute path"},
		{"systemd", "/kubepods/burstable/pod1", "not a systemd slice"},
		{"systemd", "a:b.slice", "not a systemd slice"},
		{"cgroupv3", "/x", `unknown cgroup driver "cgroupv3"`},
	} {
		_, err := cgroupsPath(&Node{CgroupDriver: c.driver}, c.parent, "c1")
		wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
	}
	in, _ := testInput()
	in.Node.CgroupDriver = "systemd"
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "cgroupDriver")
}
