package sandbox

import (
	"context"
	"encoding/json"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

func TestUpdateResourcesIsRecordedAndSurvivesRestart(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, hostPod("res"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(ctx, id); m.Remove(ctx, id) })

	res := &runtimeapi.LinuxContainerResources{CpuShares: 1536, MemoryLimitInBytes: 256 << 20, CpusetCpus: "0"}
	overhead := &runtimeapi.LinuxContainerResources{CpuShares: 10}
	if err := m.UpdateResources(context.Background(), id, overhead, res); err != nil {
		t.Fatal(err)
	}
	check := func(m *Manager, when string) {
		t.Helper()
		sb, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if sb.Resources == nil {
			t.Fatalf("%s: no resources recorded", when)
		}
		var r, o struct {
			CPUShares string `json:"cpuShares"`
			Memory    string `json:"memoryLimitInBytes"`
		}
		if err := json.Unmarshal(sb.Resources.Resources, &r); err != nil || r.CPUShares != "1536" || r.Memory != "268435456" {
			t.Errorf("%s: resources = %s (%v)", when, sb.Resources.Resources, err)
		}
		if err := json.Unmarshal(sb.Resources.Overhead, &o); err != nil || o.CPUShares != "10" {
			t.Errorf("%s: overhead = %s (%v)", when, sb.Resources.Overhead, err)
		}
	}
	check(m, "after update")
	check(e.manager(t), "after restart")

	// Refused updates leave the recorded values alone.
	wantKind(t, m.UpdateResources(context.Background(), id, nil, &runtimeapi.LinuxContainerResources{CpuQuota: -7}), errdefs.ErrInvalidArgument)
	wantKind(t, m.UpdateResources(context.Background(), id, nil, &runtimeapi.LinuxContainerResources{CpusetMems: "a"}), errdefs.ErrInvalidArgument)
	wantKind(t, m.UpdateResources(context.Background(), id, nil, nil), errdefs.ErrInvalidArgument)
	wantKind(t, m.UpdateResources(context.Background(), "nope", nil, res), errdefs.ErrNotFound)
	check(m, "after refused updates")
}

func TestUpdateResourcesChecksAgainstNodeFacts(t *testing.T) {
	e := newEnv(t, false)
	e.cfg.Node = &spec.Node{Host: spec.HostFacts{HugePageSizes: []string{"2MB"}, Hugetlb: true}}
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, hostPod("huge"), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(ctx, id); m.Remove(ctx, id) })
	wantKind(t, m.UpdateResources(context.Background(), id, nil, &runtimeapi.LinuxContainerResources{
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "1GB", Limit: 1 << 30}},
	}), errdefs.ErrInvalidArgument)
	if err := m.UpdateResources(context.Background(), id, nil, &runtimeapi.LinuxContainerResources{
		HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}},
	}); err != nil {
		t.Fatal(err)
	}
}
