package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerStatsThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/stats:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/stats:1")

	d, pod, podID, logDir := podWithImage(t, "stats", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})

	// 20 MiB of tmpfs pages, charged to the container's cgroup and not
	// reclaimable as file cache, so part of the working set.
	memCfg := containerConfig("mem", imageName, "sh", "-c",
		`dd if=/dev/zero of=/dev/shm/x bs=1M count=20 && echo ready; sleep 1000`)
	memCfg.Annotations = map[string]string{"note": "hungry"}
	idleCfg := containerConfig("idle", imageName, "sleep", "1000")
	var ids []string
	for _, cfg := range []*runtimeapi.ContainerConfig{memCfg, idleCfg} {
		id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
		if err != nil {
			t.Fatal(err)
		}
		// A created container has its writable layer, but no CPU or memory
		// usage to account yet.
		if cfg == idleCfg {
			st, err := d.Runtime.ContainerStats(ctx, id)
			if err != nil || st.GetCpu() != nil || st.GetMemory() != nil || st.GetWritableLayer().GetInodesUsed().GetValue() == 0 {
				t.Errorf("stats of a created container = %v, %v", st, err)
			}
		}
		if err := d.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		ids = append(ids, id)
	}
	memID, idleID := ids[0], ids[1]
	eventually(t, 60*time.Second, "the mem container to fill its variable", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "mem.log"))
		return strings.Contains(string(b), "stdout F ready")
	})

	// CPU and memory: polled, since answers come from a cache refreshed in
	// the background.
	var st *runtimeapi.ContainerStats
	var err error
	eventually(t, 30*time.Second, "memory working set > 10 MiB and a CPU rate", func() bool {
		if st, err = d.Runtime.ContainerStats(ctx, memID); err != nil {
			t.Fatal(err)
		}
		return st.GetMemory().GetWorkingSetBytes().GetValue() > 10<<20 && st.GetCpu().GetUsageNanoCores() != nil
	})
	if a := st.GetAttributes(); a.GetId() != memID || a.GetMetadata().GetName() != "mem" ||
		a.GetLabels()["container"] != "mem" || a.GetAnnotations()["note"] != "hungry" {
		t.Errorf("attributes = %v", a)
	}
	cpu, mem := st.GetCpu(), st.GetMemory()
	if cpu.GetUsageCoreNanoSeconds().GetValue() == 0 || cpu.GetTimestamp() == 0 {
		t.Errorf("cpu = %v", cpu)
	}
	if mem.GetUsageBytes().GetValue() < mem.GetWorkingSetBytes().GetValue() || mem.GetRssBytes().GetValue() == 0 ||
		mem.GetPageFaults().GetValue() == 0 || mem.GetTimestamp() == 0 {
		t.Errorf("memory = %v", mem)
	}
	// kubelet matches the writable layer's filesystem with ImageFsInfo's
	// container filesystem; here both are the root's (no disk of its own).
	fsInfo, err := d.Images.ImageFsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if wl := st.GetWritableLayer(); wl.GetFsId().GetMountpoint() != d.root ||
		wl.GetFsId().GetMountpoint() != fsInfo.GetContainerFilesystems()[0].GetFsId().GetMountpoint() || wl.GetTimestamp() == 0 {
		t.Errorf("writable layer = %v, ImageFsInfo container filesystems = %v", wl, fsInfo.GetContainerFilesystems())
	}

	// A file written into the container's root shows in its writable
	// layer once the cached walk expires.
	before := st.GetWritableLayer().GetUsedBytes().GetValue()
	if _, _, err := d.Runtime.ExecSync(ctx, memID, []string{"dd", "if=/dev/zero", "of=/big", "bs=1M", "count=4"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 40*time.Second, "the 4 MiB file in the writable layer", func() bool {
		if st, err = d.Runtime.ContainerStats(ctx, memID); err != nil {
			t.Fatal(err)
		}
		return st.GetWritableLayer().GetUsedBytes().GetValue() >= before+4<<20
	})
	if st.GetWritableLayer().GetInodesUsed().GetValue() < 2 {
		t.Errorf("inodes = %v", st.GetWritableLayer().GetInodesUsed())
	}

	// Filters: id, pod, labels.
	listIDs := func(f *runtimeapi.ContainerStatsFilter) []string {
		t.Helper()
		list, err := d.Runtime.ListContainerStats(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range list {
			out = append(out, s.GetAttributes().GetId())
		}
		return sorted(out)
	}
	for _, c := range []struct {
		name string
		f    *runtimeapi.ContainerStatsFilter
		want []string
	}{
		{"none", nil, sorted([]string{memID, idleID})},
		{"pod", &runtimeapi.ContainerStatsFilter{PodSandboxId: podID}, sorted([]string{memID, idleID})},
		{"other pod", &runtimeapi.ContainerStatsFilter{PodSandboxId: "0123456789abcdef"}, nil},
		{"id", &runtimeapi.ContainerStatsFilter{Id: idleID}, []string{idleID}},
		{"label", &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"container": "mem"}}, []string{memID}},
		{"label mismatch", &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"container": "nope"}}, nil},
	} {
		if got := listIDs(c.f); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("ListContainerStats(%s) = %v, want %v", c.name, got, c.want)
		}
	}

	if _, err := d.Runtime.ContainerStats(ctx, "0123456789abcdef0123"); status.Code(err) != codes.NotFound {
		t.Errorf("stats of an unknown container: %v", err)
	}
	if _, err := d.Runtime.ContainerStats(ctx, ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("stats without an id: %v", err)
	}

	// A stopped container keeps its layer stats and loses CPU and memory.
	if err := d.Runtime.StopContainer(ctx, idleID, 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, idleID, runtimeapi.ContainerState_CONTAINER_EXITED)
	if st, err = d.Runtime.ContainerStats(ctx, idleID); err != nil {
		t.Fatal(err)
	}
	if st.GetCpu() != nil || st.GetMemory() != nil || st.GetSwap() != nil || st.GetWritableLayer().GetInodesUsed().GetValue() == 0 {
		t.Errorf("stats of a stopped container = %v", st)
	}
}
