package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// cgroupFile reads a v1 controller file of a container's cgroup, found
// through the cgroupsPath of its bundle (cgroupfs driver).
func cgroupFile(t *testing.T, d *daemon, id, controller, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "containers", id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, s.Linux.CgroupsPath, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

func wantCode(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: %v, want %v mentioning %q", what, err, code, msg)
	}
}

func TestUpdateResourcesThroughCRI(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.shares"); err != nil {
		t.Skip("needs the cgroup v1 cpu controller")
	}
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/upd:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/upd:1")
	d, pod, podID, _ := podWithImage(t, "upd", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})

	// A running container, resized live.
	cfg := containerConfig("live", imageName, "sleep", "1000")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}}
	live, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, live); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, live, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := cgroupFile(t, d, live, "cpu", "cpu.shares"); got != "512" {
		t.Fatalf("cpu.shares at start = %s", got)
	}
	update := &runtimeapi.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 96 << 20}
	if err := d.Runtime.UpdateContainerResources(ctx, live, &runtimeapi.ContainerResources{Linux: update}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if got := cgroupFile(t, d, live, "cpu", "cpu.shares"); got != "1024" {
			t.Errorf("%s: cpu.shares = %s", when, got)
		}
		if got := cgroupFile(t, d, live, "memory", "memory.limit_in_bytes"); got != "100663296" {
			t.Errorf("%s: memory.limit_in_bytes = %s", when, got)
		}
		st, err := d.Runtime.ContainerStatus(ctx, live, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.GetStatus().GetResources().GetLinux(); !proto.Equal(got, update) {
			t.Errorf("%s: ContainerStatus.resources = %v, want %v", when, got, update)
		}
	}
	check("after update")

	// Created, not started: the new limit is there when it starts.
	later, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("later", imageName, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.UpdateContainerResources(ctx, later, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 300}}); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, later); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, later, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if got := cgroupFile(t, d, later, "cpu", "cpu.shares"); got != "300" {
		t.Errorf("cpu.shares of the container updated before start = %s", got)
	}

	// Refusals.
	err = d.Runtime.UpdateContainerResources(ctx, "no-such-container", &runtimeapi.ContainerResources{Linux: update})
	wantCode(t, "unknown container", err, codes.NotFound, "no-such-container")
	err = d.Runtime.UpdateContainerResources(ctx, live, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpusetCpus: "3-1"}})
	wantCode(t, "bad cpuset", err, codes.InvalidArgument, "cpuset_cpus")
	err = d.Runtime.UpdateContainerResources(ctx, live, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 7, CpusetCpus: "0-4000"}})
	if err == nil {
		t.Error("update to CPUs that do not exist succeeded")
	}

	// Pod-level resources: recorded and shown; garbage refused.
	podRes := &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: podID,
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: 1536, MemoryLimitInBytes: 200 << 20}}
	if _, err := d.Runtime.UpdatePodSandboxResources(ctx, podRes); err != nil {
		t.Fatal(err)
	}
	_, err = d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: podID,
		Resources: &runtimeapi.LinuxContainerResources{CpuShares: -1}})
	wantCode(t, "negative pod shares", err, codes.InvalidArgument, "cpu_shares")
	_, err = d.Runtime.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "nopod",
		Resources: podRes.Resources})
	wantCode(t, "unknown pod", err, codes.NotFound, "nopod")

	// Pod CIDR: empty is a no-op, garbage refused, a CIDR kept.
	if err := d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{}}); err != nil {
		t.Errorf("empty pod CIDR: %v", err)
	}
	err = d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.1.2.3"}})
	wantCode(t, "bad pod CIDR", err, codes.InvalidArgument, "10.1.2.3")
	if err := d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.7.0/24"}}); err != nil {
		t.Fatal(err)
	}

	checkRecorded := func(when string) {
		t.Helper()
		st, err := d.Runtime.PodSandboxStatus(ctx, podID, true)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Resources struct {
				Resources struct {
					CPUShares string `json:"cpuShares"`
				} `json:"resources"`
			} `json:"resources"`
		}
		if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Resources.Resources.CPUShares != "1536" {
			t.Errorf("%s: pod verbose info %s (%v) lacks the pod resources", when, st.GetInfo()["info"], err)
		}
		rs, err := d.Runtime.Status(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := rs.GetInfo()["podCIDR"]; got != "10.244.7.0/24" {
			t.Errorf("%s: Status info podCIDR = %q", when, got)
		}
	}
	checkRecorded("before restart")

	d.stop()
	d.start()
	check("after restart")
	checkRecorded("after restart")
}

func TestCheckpointRPCsValidateThenNeedCRIU(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/ckpt:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/ckpt:1")
	d, pod, podID, _ := podWithImage(t, "ckpt", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	id, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("c", imageName, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	location := filepath.Join(d.dir, "ckpt.tar")

	err = d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: "nope", Location: location})
	wantCode(t, "unknown container", err, codes.NotFound, "nope")
	err = d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id})
	wantCode(t, "no location", err, codes.InvalidArgument, "location")
	out := t.TempDir()
	err = d.Runtime.CheckpointPod(ctx, &runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: filepath.Join(out, "missing"), ContainerIds: []string{id}})
	wantCode(t, "missing output dir", err, codes.InvalidArgument, "output_path")
	err = d.Runtime.CheckpointPod(ctx, &runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{id, id}})
	wantCode(t, "duplicate container", err, codes.InvalidArgument, "twice")

	// Valid requests: this node's CRIU (if any) decides, and says why.
	err = d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: location})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "CRIU") {
		t.Fatalf("CheckpointContainer: %v, want FailedPrecondition naming CRIU", err)
	}
	t.Logf("CheckpointContainer on this node: %v", err)
	err2 := d.Runtime.CheckpointPod(ctx, &runtimeapi.CheckpointPodRequest{PodSandboxId: podID, OutputPath: out, ContainerIds: []string{id}})
	if status.Code(err2) != codes.FailedPrecondition || status.Convert(err2).Message() == "" {
		t.Errorf("CheckpointPod: %v", err2)
	}
	if _, err := os.Stat(location); !os.IsNotExist(err) {
		t.Errorf("something was written at the checkpoint location: %v", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("the pod checkpoint directory got %d entries", len(ents))
	}
}

func TestCheckpointWithHangingCRIUAnswersWithinItsTimeout(t *testing.T) {
	needRoot(t)
	fake := t.TempDir()
	marker := filepath.Join(fake, "ran")
	if err := os.WriteFile(filepath.Join(fake, "criu"), []byte("#!/bin/sh\necho >> "+marker+"\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The daemon inherits PATH: its `criu` is the fake one.
	t.Setenv("PATH", fake+":"+os.Getenv("PATH"))
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	req := &runtimeapi.RestorePodRequest{
		CheckpointPath:   t.TempDir(),
		Config:           podConfig("restored", runtimeapi.NamespaceMode_CONTAINER),
		ContainerConfigs: []*runtimeapi.ContainerConfig{containerConfig("c", "busybox")},
	}
	_, err := d.Runtime.RestorePod(ctx, &runtimeapi.RestorePodRequest{CheckpointPath: "relative", Config: req.Config, ContainerConfigs: req.ContainerConfigs})
	wantCode(t, "relative checkpoint path", err, codes.InvalidArgument, "absolute")
	if _, err := os.Stat(marker); err == nil {
		t.Error("criu ran for an invalid request")
	}

	start := time.Now()
	_, err = d.Runtime.RestorePod(ctx, req)
	took := time.Since(start)
	wantCode(t, "hanging criu", err, codes.FailedPrecondition, "did not answer within")
	if took > 20*time.Second {
		t.Errorf("RestorePod took %v", took)
	}
	// The verdict is kept: no second wait.
	start = time.Now()
	_, err = d.Runtime.RestorePod(ctx, req)
	wantCode(t, "hanging criu, again", err, codes.FailedPrecondition, "did not answer within")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("second RestorePod took %v: the verdict was not cached", took)
	}
	if b, _ := os.ReadFile(marker); strings.Count(string(b), "\n") != 1 {
		t.Errorf("criu ran %d times", strings.Count(string(b), "\n"))
	}
}
