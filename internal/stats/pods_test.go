package stats

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// fakeSource serves fixed figures and counts every read, so tests can
// prove which calls touch the host and which answer from the cache.
type fakeSource struct {
	mu      sync.Mutex
	cgroups map[string]CgroupStats
	nets    map[string][]Interface
	netErr  error
	reads   atomic.Int64
	full    []bool // the full argument of each Cgroup read
}

func newFakeSource() *fakeSource {
	return &fakeSource{cgroups: map[string]CgroupStats{}, nets: map[string][]Interface{}}
}

func (f *fakeSource) setCgroup(p string, cg CgroupStats) {
	f.mu.Lock()
	f.cgroups[p] = cg
	f.mu.Unlock()
}

func (f *fakeSource) Cgroup(p string, full bool) (CgroupSample, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	cg, ok := f.cgroups[p]
	if !ok {
		return CgroupSample{}, errdefs.NotFound("cgroup %s", p)
	}
	// One process per 1000 bytes of memory: arbitrary, but distinct per cgroup.
	f.full = append(f.full, full)
	return CgroupSample{Stats: cg, Detail: Detail{Procs: ProcessStats{Processes: cg.MemoryUsage / 1000}, Full: full}}, nil
}

func (f *fakeSource) Network(p string) ([]Interface, error) {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.netErr != nil {
		return nil, f.netErr
	}
	return f.nets[p], nil
}

func (f *fakeSource) Layer(string) (uint64, uint64, error) { f.reads.Add(1); return 4096, 1, nil }
func (f *fakeSource) Filesystem(string) (FsInfo, error)    { f.reads.Add(1); return FsInfo{}, nil }

type fakeWorld struct {
	mu   sync.Mutex
	ctrs []Target
	pods []PodTarget
}

func (w *fakeWorld) set(ctrs []Target, pods []PodTarget) {
	w.mu.Lock()
	w.ctrs, w.pods = ctrs, pods
	w.mu.Unlock()
}

func (w *fakeWorld) targets() []Target {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Target(nil), w.ctrs...)
}

func (w *fakeWorld) podTargets() []PodTarget {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]PodTarget(nil), w.pods...)
}

func newFakeCollector(t testing.TB, src *fakeSource, w *fakeWorld) *Collector {
	t.Helper()
	// The loop refreshes once at start (of nothing yet): wait for it, so
	// that it cannot race the test.
	started := make(chan struct{})
	var once sync.Once
	c, err := New(Config{Source: src, Interval: time.Hour, Targets: w.targets, Pods: w.podTargets,
		loopRefreshed: func() { once.Do(func() { close(started) }) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	<-started
	return c
}

func TestPodOwnCgroupAndNetwork(t *testing.T) {
	src, w := newFakeSource(), &fakeWorld{}
	c := newFakeCollector(t, src, w)
	src.setCgroup("/kubepods/pod1", CgroupStats{CPUUsageNanos: 1e9, MemoryUsage: 5000, WorkingSet: 4000, MemoryLimit: 10000})
	src.nets["/run/ns/pod1"] = []Interface{{Name: "eth0", RxBytes: 100, TxBytes: 50}}
	pt := PodTarget{ID: "pod1", CgroupsPath: "/kubepods/pod1", NetNS: "/run/ns/pod1"}
	w.set(nil, []PodTarget{pt})
	c.Refresh()

	first, ok := c.CachedPod("pod1")
	if !ok || !first.HasCgroup || first.Summed || first.HasNanoCores || first.Cgroup.WorkingSet != 4000 {
		t.Fatalf("first pod sample: %+v", first)
	}
	if !first.HasDetail || first.Detail.Procs.Processes != 5 {
		t.Errorf("detail = %+v", first.Detail)
	}
	if !first.HasNetwork || len(first.Network) != 1 || first.Network[0].RxBytes != 100 {
		t.Errorf("network = %+v", first.Network)
	}

	src.setCgroup("/kubepods/pod1", CgroupStats{CPUUsageNanos: 3e9, MemoryUsage: 5000})
	src.nets["/run/ns/pod1"] = []Interface{{Name: "eth0", RxBytes: 900, TxBytes: 70}}
	c.Refresh()
	second, _ := c.CachedPod("pod1")
	wall := second.Timestamp.Sub(first.Timestamp)
	if !second.HasNanoCores || second.NanoCores != nanoCores(2e9, wall) {
		t.Errorf("pod rate = %d (has %v), want %d", second.NanoCores, second.HasNanoCores, nanoCores(2e9, wall))
	}
	if second.Network[0].RxBytes != 900 {
		t.Errorf("network not refreshed: %+v", second.Network)
	}

	// The namespace vanishing (pod stopping) costs the network, not the rest.
	src.netErr = errors.New("no such namespace")
	c.Refresh()
	third, _ := c.CachedPod("pod1")
	if third.HasNetwork || !third.HasCgroup {
		t.Errorf("after netns loss: %+v", third)
	}

	// A pod that is no longer a target is forgotten.
	w.set(nil, nil)
	c.Refresh()
	if _, ok := c.CachedPod("pod1"); ok {
		t.Error("removed pod still cached")
	}
}

func TestPodWithoutCgroupSumsContainers(t *testing.T) {
	src, w := newFakeSource(), &fakeWorld{}
	c := newFakeCollector(t, src, w)
	src.setCgroup("/cradle/a", CgroupStats{CPUUsageNanos: 10, MemoryUsage: 2000, WorkingSet: 100, RSS: 1, HasSwap: true, Swap: 3})
	src.setCgroup("/cradle/b", CgroupStats{CPUUsageNanos: 20, MemoryUsage: 3000, WorkingSet: 200, RSS: 2})
	w.set([]Target{{ID: "a", CgroupsPath: "/cradle/a"}, {ID: "b", CgroupsPath: "/cradle/b"}, {ID: "gone", CgroupsPath: "/cradle/gone"}},
		[]PodTarget{{ID: "p", Containers: []string{"a", "b", "gone"}}})
	c.Refresh()
	s, ok := c.CachedPod("p")
	if !ok || !s.Summed || !s.HasCgroup || s.HasDetail {
		t.Fatalf("summed pod: %+v", s)
	}
	if cg := s.Cgroup; cg.CPUUsageNanos != 30 || cg.MemoryUsage != 5000 || cg.WorkingSet != 300 || cg.RSS != 3 ||
		!cg.HasSwap || cg.Swap != 3 || cg.MemoryLimit != 0 {
		t.Errorf("sum = %+v", cg)
	}
	if s.Detail.Procs.Processes != 5 {
		t.Errorf("summed processes = %d", s.Detail.Procs.Processes)
	}
	// One refresh: no container has a rate yet, so neither has the pod.
	if s.HasNanoCores {
		t.Error("pod rate before its containers have one")
	}
	c.Refresh()
	if s, _ = c.CachedPod("p"); !s.HasNanoCores {
		t.Error("pod rate missing once every container has one")
	}

	// No running container: no CPU or memory, not zeros.
	w.set(nil, []PodTarget{{ID: "p"}})
	c.Refresh()
	if s, _ = c.CachedPod("p"); s.HasCgroup {
		t.Errorf("empty pod reports usage: %+v", s)
	}
}

// TestCachedAnswersReadNothing proves the RPC path costs no reads once the
// loop has sampled: what a kubelet polling many pods and containers pays.
func TestCachedAnswersReadNothing(t *testing.T) {
	src, w := newFakeSource(), &fakeWorld{}
	c := newFakeCollector(t, src, w)
	var ctrs []Target
	var pods []PodTarget
	for i := range 50 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		src.setCgroup("/cradle/"+id, CgroupStats{MemoryUsage: 1})
		ctrs = append(ctrs, Target{ID: id, CgroupsPath: "/cradle/" + id, WritableLayer: "/layers/" + id})
		pods = append(pods, PodTarget{ID: "pod-" + id, Containers: []string{id}, NetNS: "/ns/" + id})
	}
	w.set(ctrs, pods)
	c.Refresh()

	before := src.reads.Load()
	for range 10 {
		for i := range ctrs {
			if s, err := c.Get(ctrs[i]); err != nil || !s.HasCgroup {
				t.Fatalf("Get: %+v, %v", s, err)
			}
			if s, err := c.Pod(pods[i]); err != nil || !s.HasCgroup || !s.HasNetwork {
				t.Fatalf("Pod: %+v, %v", s, err)
			}
		}
	}
	if n := src.reads.Load() - before; n != 0 {
		t.Fatalf("cached answers did %d reads", n)
	}

	// A pod the loop has not seen yet is sampled once, network included;
	// later calls answer from the cache.
	src.setCgroup("/kubepods/new", CgroupStats{MemoryUsage: 1})
	src.nets["/ns/new"] = []Interface{{Name: "eth0"}}
	newPod := PodTarget{ID: "new", CgroupsPath: "/kubepods/new", NetNS: "/ns/new"}
	for range 3 {
		s, err := c.Pod(newPod)
		if err != nil || !s.HasCgroup || !s.HasNetwork {
			t.Fatalf("on-demand pod sample: %+v, %v", s, err)
		}
	}
	if n := src.reads.Load() - before; n != 2 { // cgroup (stats and details in one pass), network
		t.Fatalf("on-demand pod sample did %d reads, want 3", n)
	}

	// A pod without a cgroup yet probes for it on each call, but never
	// enters its namespace again.
	before = src.reads.Load()
	empty := PodTarget{ID: "empty", CgroupsPath: "/kubepods/empty", NetNS: "/ns/new"}
	for range 3 {
		if s, err := c.Pod(empty); err != nil || s.HasCgroup || !s.HasNetwork {
			t.Fatalf("pod without cgroup: %+v, %v", s, err)
		}
	}
	if n := src.reads.Load() - before; n != 4 { // network once, a failed cgroup probe per call
		t.Fatalf("pod without cgroup did %d reads, want 4", n)
	}
}

func TestPodCgroupReadError(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"cpuacct/kubepods/p/cpuacct.usage": "garbage\n"})
	w := &fakeWorld{}
	c, err := New(Config{Hierarchy: Hierarchy{Root: root}, Interval: time.Hour, Targets: w.targets, Pods: w.podTargets})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Pod(PodTarget{ID: "p", CgroupsPath: "/kubepods/p"}); err == nil || errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("corrupt pod cgroup: %v", err)
	}
	if _, err := c.Pod(PodTarget{ID: "p", CgroupsPath: "relative/path"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad cgroup parent: %v", err)
	}
}

func BenchmarkCachedPodAndContainers(b *testing.B) {
	src, w := newFakeSource(), &fakeWorld{}
	c := newFakeCollector(b, src, w)
	var ctrs []Target
	for i := range 200 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		src.setCgroup("/cradle/"+id, CgroupStats{MemoryUsage: 1})
		ctrs = append(ctrs, Target{ID: id, CgroupsPath: "/cradle/" + id})
	}
	w.set(ctrs, []PodTarget{{ID: "p", CgroupsPath: "/cradle/aa"}})
	c.Refresh()
	before := src.reads.Load()
	b.ReportAllocs()
	for b.Loop() {
		for i := range ctrs {
			_, _ = c.Get(ctrs[i])
		}
		_, _ = c.Pod(PodTarget{ID: "p", CgroupsPath: "/cradle/aa"})
	}
	if n := src.reads.Load() - before; n != 0 {
		b.Fatalf("%d reads while answering from the cache", n)
	}
}
