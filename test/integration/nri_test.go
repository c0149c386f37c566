package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// nriDaemon starts a daemon (its own NRI socket) with a busybox image
// pulled and a pod running.
func nriDaemon(t *testing.T, o daemonOpts, plugin *testPlugin) (d *daemon, img string, pod *runtimeapi.PodSandboxConfig, podID string) {
	t.Helper()
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	img = reg.Ref("it/busybox:1")
	d = newDaemonFiles(t, o)
	withTestNetwork(t, d)
	d.start()
	if plugin != nil {
		connectPlugin(t, d, "test", "10", plugin)
	}
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(img), nil, nil); err != nil {
		t.Fatal(err)
	}
	pod = podConfig("nri", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	return d, img, pod, podID
}

func bundleSpec(t *testing.T, d *daemon, id string) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(d.state, "containers", id, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestNRIEventsAndSynchronization(t *testing.T) {
	needRoot(t)
	p := &testPlugin{}
	d, img, pod, podID := nriDaemon(t, daemonOpts{}, p)
	ctx := context.Background()
	if st := nriStatus(t, d); !st.Enabled || st.Socket != d.nriSocket() || !slices.Equal(st.Plugins, []string{"10-test"}) {
		t.Fatalf("Status nri = %+v", st)
	}

	id, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("sleeper", img, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}}); err != nil {
		t.Fatal(err)
	}
	// A container that exits on its own is stopped for the plugins too.
	quitter, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("quitter", img, "sh", "-c", "exit 3"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, quitter); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the quitter's StopContainer event", func() bool {
		return slices.Contains(p.Events(quitter), "StopContainer")
	})

	// A plugin connecting now is synchronized with what exists.
	late := &testPlugin{}
	connectPlugin(t, d, "late", "20", late)
	if synced := late.Synced(); !slices.Contains(synced, podID) || !slices.Contains(synced, id) || !slices.Contains(synced, quitter) {
		t.Errorf("late plugin synchronized with %v, want pod %s and containers %s, %s", synced, podID, id, quitter)
	}
	if st := nriStatus(t, d); !slices.Equal(st.Plugins, []string{"10-test", "20-late"}) {
		t.Errorf("Status nri plugins = %v", st.Plugins)
	}

	if err := d.Runtime.StopContainer(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{id, quitter} {
		if err := d.Runtime.RemoveContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil { // tells no plugin again
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := eventsEqual(p.Events(id), []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
		"UpdateContainer", "PostUpdateContainer", "StopContainer", "RemoveContainer"}); err != nil {
		t.Errorf("container: %v", err)
	}
	if err := eventsEqual(p.Events(quitter), []string{"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer",
		"StopContainer", "RemoveContainer"}); err != nil {
		t.Errorf("exiting container: %v", err)
	}
	if err := eventsEqual(p.Events(podID), []string{"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox"}); err != nil {
		t.Errorf("pod: %v", err)
	}
	if err := eventsEqual(late.Events(id), []string{"StopContainer", "RemoveContainer"}); err != nil {
		t.Errorf("late plugin: %v", err)
	}
}

func TestNRIAdjustmentsThroughCRI(t *testing.T) {
	needRoot(t)
	share, hookDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "hello"), []byte("from a plugin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lowOOM := -900
	p := &testPlugin{}
	p.onCreate = func(_ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		adj := &api.ContainerAdjustment{}
		if c.GetName() == "low" {
			adj.SetLinuxOomScoreAdj(&lowOOM)
			return adj, nil, nil
		}
		oom := 500
		adj.AddAnnotation("nri.cradle.test/added", "yes")
		adj.AddMount(&api.Mount{Destination: "/nri-mnt", Source: share, Type: "bind", Options: []string{"rbind", "ro"}})
		adj.AddEnv("NRI_ENV", "set")
		adj.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + hookDir + "/hooked"}}}})
		adj.AddDevice(&api.LinuxDevice{Path: "/dev/nri-null", Type: "c", Major: 1, Minor: 3, FileMode: api.FileMode(0o666)})
		adj.AddCDIDevice(&api.CDIDevice{Name: "cradle.test/dev=null0"})
		adj.AddRlimit("RLIMIT_NOFILE", 4321, 1234)
		adj.SetLinuxOomScoreAdj(&oom)
		adj.SetLinuxCgroupsPath("/cradle/nri-" + c.GetId())
		adj.SetLinuxCPUShares(256)
		adj.SetLinuxMemoryLimit(96 << 20)
		adj.SetLinuxPidLimits(77)
		adj.AddLinuxHugepageLimit("2MB", 4<<20)
		adj.SetLinuxBlockIOClass("gold") // no classes configured: ignored
		adj.SetArgs([]string{"sleep", "1001"})
		return adj, nil, nil
	}
	d, img, pod, podID := nriDaemon(t, daemonOpts{}, p)
	ctx := context.Background()
	if err := os.MkdirAll(d.cdiDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(d.cdiDir(), "vendor.yaml"), cdiVendorSpec("null0", share))

	id, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("adjusted", img, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	s := bundleSpec(t, d, id)
	if s.Annotations["nri.cradle.test/added"] != "yes" {
		t.Errorf("annotations = %v", s.Annotations)
	}
	if !slices.Equal(s.Process.Args, []string{"sleep", "1001"}) {
		t.Errorf("args = %v", s.Process.Args)
	}
	if r := s.Linux.Resources; r.Pids == nil || r.Pids.Limit == nil || *r.Pids.Limit != 77 {
		t.Errorf("pids = %+v", r.Pids)
	}
	_, hugetlbErr := os.Stat("/sys/fs/cgroup/hugetlb")
	if hugetlb := hugetlbErr == nil; hugetlb != (len(s.Linux.Resources.HugepageLimits) == 1) {
		t.Errorf("hugepage limits %+v with a hugetlb controller: %v", s.Linux.Resources.HugepageLimits, hugetlb)
	}
	if _, err := os.Stat(filepath.Join(hookDir, "hooked")); err != nil {
		t.Errorf("the plugin's createRuntime hook did not run: %v", err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"cat", "/nri-mnt/hello"}, "from a plugin\n"},
		{[]string{"sh", "-c", "echo $NRI_ENV $CRADLE_CDI"}, "set null0\n"},
		{[]string{"stat", "-c", "%F %t:%T", "/dev/nri-null", "/dev/cradle-null0"}, "character special file 1:3\ncharacter special file 1:3\n"},
		{[]string{"sh", "-c", "echo x > /dev/nri-null && echo written"}, "written\n"},
		// The init's limits: an exec'd process races Debian's runc 1.1,
		// whose Go runtime raises its soft NOFILE to the hard limit while
		// the parent sets the spec's (fixed in runc 1.2).
		{[]string{"sh", "-c", "grep 'Max open files' /proc/1/limits | tr -s ' ' | cut -d' ' -f4,5"}, "1234 4321\n"},
		{[]string{"cat", "/proc/1/oom_score_adj"}, "500\n"},
		{[]string{"sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"}, "sleep 1001 "},
		{[]string{"cat", "/sys/fs/cgroup/cpu/cpu.shares"}, "256\n"},
		{[]string{"cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}, strconv.Itoa(96<<20) + "\n"},
	} {
		if out, err := execOut(d, id, c.cmd...); err != nil || out != c.want {
			t.Errorf("%v = %q, %v; want %q", c.cmd, out, err, c.want)
		}
	}
	if out, err := execOut(d, id, "cat", "/proc/1/cgroup"); err != nil || !strings.Contains(out, "/cradle/nri-"+id) {
		t.Errorf("/proc/1/cgroup = %q, %v; want the plugin's cgroups path", out, err)
	}

	// A plugin cannot lower oom_score_adj below the daemon's own: the
	// kernel would refuse it.
	daemonAdj := readInt(t, filepath.Join("/proc", strconv.Itoa(d.cmd.Process.Pid), "oom_score_adj"))
	low, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("low", img, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if got := *bundleSpec(t, d, low).Process.OOMScoreAdj; got != max(lowOOM, daemonAdj) {
		t.Errorf("oom_score_adj %d, want %d (the plugin's %d, the daemon's %d)", got, max(lowOOM, daemonAdj), lowOOM, daemonAdj)
	}
	if err := d.Runtime.StartContainer(ctx, low); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, low, runtimeapi.ContainerState_CONTAINER_RUNNING)
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNRIContainerUpdates(t *testing.T) {
	needRoot(t)
	p := &testPlugin{}
	// kubelet's update: the plugin raises the memory limit it asks for.
	p.onUpdate = func(c *api.Container, r *api.LinuxResources) ([]*api.ContainerUpdate, error) {
		u := &api.ContainerUpdate{}
		u.SetContainerId(c.GetId())
		u.SetLinuxMemoryLimit(r.GetMemory().GetLimit().GetValue() + 32<<20)
		return []*api.ContainerUpdate{u}, nil
	}
	d, img, pod, podID := nriDaemon(t, daemonOpts{}, nil)
	s := connectPlugin(t, d, "test", "10", p)
	ctx := context.Background()
	id, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("resized", img, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if err := d.Runtime.UpdateContainerResources(ctx, id, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}); err != nil {
		t.Fatal(err)
	}
	if out, err := execOut(d, id, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil || out != strconv.Itoa(96<<20)+"\n" {
		t.Errorf("memory limit after kubelet's update = %q, %v; want the plugin's 96 MiB", out, err)
	}

	// The plugin's own update, unasked.
	u := &api.ContainerUpdate{}
	u.SetContainerId(id)
	u.SetLinuxCPUShares(300)
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{u})
	if err != nil || len(failed) != 0 {
		t.Fatalf("UpdateContainers: failed %v, %v", failed, err)
	}
	if out, err := execOut(d, id, "cat", "/sys/fs/cgroup/cpu/cpu.shares"); err != nil || out != "300\n" {
		t.Errorf("cpu.shares after the plugin's update = %q, %v", out, err)
	}
	// An update of a container that does not exist is reported failed.
	gone := &api.ContainerUpdate{}
	gone.SetContainerId("no-such-container")
	gone.SetLinuxCPUShares(300)
	if failed, _ := s.UpdateContainers([]*api.ContainerUpdate{gone}); len(failed) != 1 {
		t.Errorf("an update of an unknown container: failed = %v", failed)
	}
}

// A plugin that hangs delays a pod by at most plugin_request_timeout, is
// dropped, and the daemon goes on without it.
func TestNRIHangingPlugin(t *testing.T) {
	needRoot(t)
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	p := &testPlugin{onRunPod: func(ctx context.Context, _ *api.PodSandbox) error {
		select {
		case <-hang:
		case <-ctx.Done():
			<-hang // answers nothing, ever
		}
		return nil
	}}
	d := newDaemonFiles(t, daemonOpts{nri: `plugin_request_timeout = "1s"`})
	withTestNetwork(t, d)
	d.start()
	connectPlugin(t, d, "hung", "10", p)
	healthy := &testPlugin{}
	connectPlugin(t, d, "healthy", "20", healthy)
	ctx := context.Background()

	start := time.Now()
	podID, err := d.Runtime.RunPodSandbox(ctx, podConfig("hang", runtimeapi.NamespaceMode_CONTAINER), "")
	if err != nil {
		t.Fatalf("RunPodSandbox with a hung plugin: %v", err)
	}
	t.Logf("RunPodSandbox took %v with a plugin hung (request timeout 1s)", time.Since(start))
	// The healthy plugin still heard of it; the hung one is gone.
	if !slices.Contains(healthy.Events(podID), "RunPodSandbox") {
		t.Errorf("healthy plugin events %v", healthy.Events(podID))
	}
	eventually(t, 10*time.Second, "the hung plugin to be dropped", func() bool {
		return !slices.Contains(nriStatus(t, d).Plugins, "10-hung")
	})
	// A plugin that goes away (crashed) is skipped as well.
	crasher := connectPlugin(t, d, "crasher", "30", &testPlugin{})
	crasher.Stop()
	second, err := d.Runtime.RunPodSandbox(ctx, podConfig("after", runtimeapi.NamespaceMode_CONTAINER), "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(healthy.Events(second), "RunPodSandbox") {
		t.Errorf("healthy plugin events %v", healthy.Events(second))
	}
	eventually(t, 10*time.Second, "the crashed plugin to be dropped", func() bool {
		return slices.Equal(nriStatus(t, d).Plugins, []string{"20-healthy"})
	})
	for _, id := range []string{podID, second} {
		if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.Events(second); len(got) != 0 {
		t.Errorf("the dropped plugin still hears events: %v", got)
	}
}

// A plugin's error from RunPodSandbox or CreateContainer fails the call
// and leaves nothing; the retry works.
func TestNRIPluginRefusal(t *testing.T) {
	needRoot(t)
	var refuse atomic.Bool
	refuse.Store(true)
	p := &testPlugin{}
	p.onRunPod = func(context.Context, *api.PodSandbox) error {
		if refuse.Load() {
			return errors.New("no pods today")
		}
		return nil
	}
	p.onCreate = func(*api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		if refuse.Load() {
			return nil, nil, errors.New("no containers today")
		}
		return nil, nil, nil
	}
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	img := reg.Ref("it/busybox:1")
	d := newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	d.start()
	connectPlugin(t, d, "refuser", "10", p)
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(img), nil, nil); err != nil {
		t.Fatal(err)
	}
	pod := podConfig("refused", runtimeapi.NamespaceMode_CONTAINER)
	if _, err := d.Runtime.RunPodSandbox(ctx, pod, ""); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no pods today") {
		t.Fatalf("RunPodSandbox refused by a plugin: %v", err)
	}
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Fatalf("a refused pod is listed: %v", pods)
	}
	refuse.Store(false)
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	refuse.Store(true)
	if _, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("c", img, "sleep", "1000"), pod); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no containers today") {
		t.Fatalf("CreateContainer refused by a plugin: %v", err)
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Fatalf("a refused container is listed: %v", ctrs)
	}
	refuse.Store(false)
	if _, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("c", img, "sleep", "1000"), pod); err != nil {
		t.Fatal(err)
	}
}
