package container

import (
	"context"
	"fmt"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

const (
	testRunc   = "/usr/sbin/runc"
	testConmon = "/usr/bin/conmon"
	// testCgroupParent holds every test container's cgroup; removed at exit.
	testCgroupParent = "/cradle-container-test"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		// Like the daemon: orphaned conmons are re-parented to us.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "set subreaper:", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if left := cgroupsLeft(); len(left) > 0 {
		fmt.Fprintln(os.Stderr, "leaked cgroups:", left)
		code = 1
	}
	for _, d := range cgroupDirs(testCgroupParent) {
		os.Remove(d)
	}
	os.Exit(code)
}

func cgroupDirs(rel string) []string {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, e := range ents {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name(), rel))
	}
	return dirs
}

// cgroupsLeft lists container cgroups still below the test parent.
func cgroupsLeft() []string {
	var left []string
	for _, d := range cgroupDirs(testCgroupParent) {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.IsDir() {
				left = append(left, filepath.Join(d, e.Name()))
			}
		}
	}
	return left
}

type fakeSandboxes struct {
	mu   sync.Mutex
	pods map[string]SandboxInfo
}

func (f *fakeSandboxes) Sandbox(id string) (SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, ok := f.pods[id]
	if !ok {
		return SandboxInfo{}, errdefs.NotFound("sandbox %s not found", id)
	}
	return sb, nil
}

// env is a Manager over fresh directories with a real image store, runc
// and conmon, as the daemon builds it.
type env struct {
	t        *testing.T
	dir      string
	reg      *testkit.Registry
	imageRef string
	imageID  string
	node     *spec.Node
	pods     *fakeSandboxes
	pod      *runtimeapi.PodSandboxConfig

	layers *layer.Store
	images *image.Service
	rt     *oci.Runtime
	m      *Manager
	obs    *counts
}

// counts is the test's Observer: each hook call as "hook label...".
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[k]++
}

func (c *counts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[k]
}

func (c *counts) ContainerStarted(handler string) { c.add("started " + handler) }
func (c *counts) ContainerExited(reason string)   { c.add("exited " + reason) }
func (c *counts) Recovered(kind, result string)   { c.add("recovered " + kind + " " + result) }

const testPod = "pod1"

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{testRunc, testConmon} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
	// Short: conmon's attach socket path must fit a sockaddr_un.
	dir, err := os.MkdirTemp("", "ct")
	if err != nil {
		t.Fatal(err)
	}
	facts, err := spec.DetectHostFacts()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, reg: testkit.NewRegistry(t), node: &spec.Node{Host: facts}, obs: &counts{}}
	e.pod = &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-1"},
		LogDirectory: filepath.Join(dir, "logs", "pod1"),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: testCgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
				Pid: runtimeapi.NamespaceMode_CONTAINER,
			}},
		},
	}
	e.pods = &fakeSandboxes{pods: map[string]SandboxInfo{testPod: {ID: testPod, Config: e.pod, Ready: true}}}
	t.Cleanup(func() { e.cleanup() })
	e.open()
	e.imageRef = e.reg.Ref("busybox:latest")
	e.reg.MustPush(t, "busybox:latest", testkit.MustBusyboxImage(t, testkit.ImageConfig{Env: []string{"PATH=/bin"}}))
	img, err := e.images.Pull(context.Background(), e.imageRef, nil, nil)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	e.imageID = img.ID.String()
	return e
}

// open starts the stores, the runtime and the Manager, as the daemon does
// at boot.
func (e *env) open() {
	e.t.Helper()
	var err error
	if e.layers, err = layer.Open(filepath.Join(e.dir, "root", "layers")); err != nil {
		e.t.Fatal(err)
	}
	if e.images, err = image.New(image.Config{Dir: filepath.Join(e.dir, "root", "images")}, e.layers); err != nil {
		e.t.Fatal(err)
	}
	e.rt, err = oci.New(oci.Config{
		Handler: "runc", RuntimePath: testRunc, ConmonPath: testConmon,
		RuntimeRoot: filepath.Join(e.dir, "runc"), StateDir: filepath.Join(e.dir, "o"),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.m, err = New(e.config())
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	// Prune right after New, as the daemon does; the tests then look at
	// what recovery did.
	if err := e.layers.Prune(); err != nil {
		e.t.Fatal(err)
	}
	e.m.WaitRecovered()
}

func (e *env) config() Config {
	return Config{
		Root: filepath.Join(e.dir, "root"), State: filepath.Join(e.dir, "s"),
		Layers: e.layers, Images: e.images,
		Runtimes: handlers.Static("runc", map[string]*oci.Runtime{"runc": e.rt}),
		Node:     e.node, Sandboxes: e.pods, Observer: e.obs,
		Log: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// stop closes everything, as a daemon exit does; containers keep running.
func (e *env) stop() {
	e.t.Helper()
	if e.m == nil {
		return
	}
	e.m.Close()
	e.rt.Close()
	e.images.Close()
	e.m = nil
}

func (e *env) restart() {
	e.t.Helper()
	e.stop()
	e.open()
}

// cleanup removes every container and checks that nothing is left.
func (e *env) cleanup() {
	t := e.t
	if e.m == nil && e.layers != nil {
		e.open()
	}
	if e.m != nil {
		for _, c := range e.m.List(Filter{}) {
			if err := e.m.Remove(ctxT(t), c.ID); err != nil {
				t.Errorf("cleanup: remove %s: %v", c.ID, err)
			}
		}
		e.stop()
	}
	e.assertClean()
	os.RemoveAll(e.dir)
}

// assertClean checks that no container has a trace left: no mounts, no
// processes, no directories, no runtime state.
func (e *env) assertClean() {
	t := e.t
	t.Helper()
	eventually(t, 10*time.Second, "conmon and container processes to go", func() bool {
		return len(processesMentioning(e.dir)) == 0
	})
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, e.dir) {
			t.Errorf("mount left behind: %s", line)
		}
	}
	for _, d := range []string{"root/containers", "s/containers", "o/ctr", "runc"} {
		ents, _ := os.ReadDir(filepath.Join(e.dir, d))
		for _, ent := range ents {
			t.Errorf("left behind: %s/%s", d, ent.Name())
		}
	}
}

func processesMentioning(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// ctrConfig runs script under sh in the test image.
func (e *env) ctrConfig(name, script string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: e.imageRef},
		Command:  []string{"sh", "-c", script},
		LogPath:  name + "/0.log",
		Labels:   map[string]string{"app": name},
		// kubelet repeats the pod's namespace modes for every container.
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: e.pod.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
}

func (e *env) create(cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id, err := e.m.Create(ctxT(e.t), testPod, cfg, e.pod)
	if err != nil {
		e.t.Fatalf("Create %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

func (e *env) run(cfg *runtimeapi.ContainerConfig) string {
	e.t.Helper()
	id := e.create(cfg)
	if err := e.m.Start(ctxT(e.t), id); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	return id
}

// waitState polls the container's status until it reaches st.
func (e *env) waitState(id string, st State) Container {
	e.t.Helper()
	var c Container
	eventually(e.t, 20*time.Second, "container "+string(st), func() bool {
		var err error
		c, err = e.m.Status(id)
		if err != nil {
			e.t.Fatalf("Status: %v", err)
		}
		return c.State == st
	})
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
