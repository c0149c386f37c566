package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// cgroupValue reads a v1 controller file of a test container's cgroup.
func cgroupValue(t *testing.T, controller, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, testCgroupParent, id, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func needCgroupV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("needs the cgroup v1 cpu controller")
	}
}

func TestUpdateRunningContainerLiveAndAfterRestart(t *testing.T) {
	e := newEnv(t)
	needCgroupV1(t)
	cfg := e.ctrConfig("upd", "sleep 1000")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20, OomScoreAdj: 100}
	id := e.run(cfg)
	e.waitState(id, Running)
	if got := cgroupValue(t, "cpu", id, "cpu.shares"); got != "512" {
		t.Fatalf("cpu.shares at create = %s", got)
	}

	err := e.m.UpdateResources(ctxT(t), id, &runtimeapi.LinuxContainerResources{CpuShares: 1024, CpuQuota: 50000, CpuPeriod: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if got := cgroupValue(t, "cpu", id, "cpu.shares"); got != "1024" {
		t.Errorf("cpu.shares after update = %s", got)
	}
	if got := cgroupValue(t, "cpu", id, "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu.cfs_quota_us after update = %s", got)
	}
	// Fields the update left zero keep their value.
	if got := cgroupValue(t, "memory", id, "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("memory.limit_in_bytes = %s, want the create-time limit", got)
	}
	want := &runtimeapi.LinuxContainerResources{CpuShares: 1024, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20, OomScoreAdj: 100}
	check := func(when string) {
		t.Helper()
		c, err := e.m.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(c.Resources, want) {
			t.Errorf("%s: status resources = %v, want %v", when, c.Resources, want)
		}
		if got := c.CRIStatus().GetResources().GetLinux(); !proto.Equal(got, want) {
			t.Errorf("%s: CRI status resources = %v", when, got)
		}
	}
	check("after update")

	// A new memory limit: applied, with swap following the create rule.
	if err := e.m.UpdateResources(ctxT(t), id, &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	if got := cgroupValue(t, "memory", id, "memory.limit_in_bytes"); got != "134217728" {
		t.Errorf("memory.limit_in_bytes after update = %s", got)
	}
	if e.node.Host.SwapAccounting {
		if got := cgroupValue(t, "memory", id, "memory.memsw.limit_in_bytes"); got != "134217728" {
			t.Errorf("memory.memsw.limit_in_bytes = %s, want the memory limit", got)
		}
	}
	want.MemoryLimitInBytes = 128 << 20
	check("after memory update")

	e.restart()
	check("after restart")
}

func TestUpdateCreatedContainerTakesEffectOnStart(t *testing.T) {
	e := newEnv(t)
	needCgroupV1(t)
	id := e.create(e.ctrConfig("later", "sleep 1000"))
	if err := e.m.UpdateResources(ctxT(t), id, &runtimeapi.LinuxContainerResources{CpuShares: 300}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(e.m.bundle(id), "config.json"))
	if err != nil || !strings.Contains(string(b), `"shares":300`) {
		t.Errorf("bundle config.json does not carry the new shares (%v)", err)
	}
	if err := e.m.Start(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	e.waitState(id, Running)
	if got := cgroupValue(t, "cpu", id, "cpu.shares"); got != "300" {
		t.Errorf("cpu.shares after start = %s", got)
	}
}

func TestUpdateRefusals(t *testing.T) {
	e := newEnv(t)
	needCgroupV1(t)
	cfg := e.ctrConfig("ref", "sleep 1000")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: 256}
	id := e.run(cfg)
	e.waitState(id, Running)

	if err := e.m.UpdateResources(ctxT(t), "nope", &runtimeapi.LinuxContainerResources{CpuShares: 2}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown container: %v", err)
	}
	for name, r := range map[string]*runtimeapi.LinuxContainerResources{
		"nil":           nil,
		"negative":      {CpuShares: -5},
		"bad cpuset":    {CpusetCpus: "3-1"},
		"swap < limit":  {MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 32 << 20},
		"unified on v1": {Unified: map[string]string{"memory.high": "1"}},
	} {
		if e.node.Host.CgroupV2 && name == "unified on v1" {
			continue
		}
		if err := e.m.UpdateResources(ctxT(t), id, r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	// Valid in form but refused by the kernel: runc fails, nothing changes.
	err := e.m.UpdateResources(ctxT(t), id, &runtimeapi.LinuxContainerResources{CpuShares: 999, CpusetCpus: "0-4000"})
	if err == nil {
		t.Fatal("update to CPUs that do not exist succeeded")
	}
	c, _ := e.m.Status(id)
	if c.Resources.GetCpuShares() != 256 || c.Resources.GetCpusetCpus() != "" {
		t.Errorf("failed update changed the status: %v", c.Resources)
	}
	rec, err := load(e.m.dir(id))
	if err != nil || rec.Resources != nil {
		t.Errorf("failed update changed the record: %v %v", rec.Resources, err)
	}

	// An exited container has no cgroup to change.
	if err := e.m.Stop(ctxT(t), id, 0); err != nil {
		t.Fatal(err)
	}
	e.waitState(id, Exited)
	if err := e.m.UpdateResources(ctxT(t), id, &runtimeapi.LinuxContainerResources{CpuShares: 2}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exited container: %v, want FailedPrecondition", err)
	}
}

func TestMergeResources(t *testing.T) {
	cur := &runtimeapi.LinuxContainerResources{
		CpuShares: 2, CpuQuota: 10, CpuPeriod: 100, CpusetCpus: "0", MemoryLimitInBytes: 100, MemorySwapLimitInBytes: 300, OomScoreAdj: 5,
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 1}}, Unified: map[string]string{"a.b": "1"},
	}
	got := mergeResources(cur, &runtimeapi.LinuxContainerResources{
		CpuShares: 4, MemoryLimitInBytes: 200, OomScoreAdj: -999,
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2}},
	})
	want := &runtimeapi.LinuxContainerResources{
		// The new memory limit brings its (unset) swap limit along;
		// oom_score_adj cannot be updated.
		CpuShares: 4, CpuQuota: 10, CpuPeriod: 100, CpusetCpus: "0", MemoryLimitInBytes: 200, OomScoreAdj: 5,
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2}}, Unified: map[string]string{"a.b": "1"},
	}
	if !proto.Equal(got, want) {
		t.Errorf("merge = %v\nwant    %v", got, want)
	}
	if cur.CpuShares != 2 || cur.HugepageLimits[0].Limit != 1 {
		t.Errorf("merge changed its input: %v", cur)
	}
	if got := mergeResources(nil, &runtimeapi.LinuxContainerResources{MemorySwapLimitInBytes: 7}); got.MemorySwapLimitInBytes != 7 {
		t.Errorf("swap alone = %v", got)
	}
	if !hugepagesEqual([]*runtimeapi.HugepageLimit{{PageSize: "1GB"}, {PageSize: "2MB", Limit: 3}},
		[]*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 3}, {PageSize: "1GB"}}) {
		t.Error("hugepagesEqual depends on order")
	}
}
