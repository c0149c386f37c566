package stats

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

type targetList struct {
	mu sync.Mutex
	ts []Target
}

func (l *targetList) get() []Target {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Target(nil), l.ts...)
}

func (l *targetList) set(ts ...Target) {
	l.mu.Lock()
	l.ts = ts
	l.mu.Unlock()
}

func newCollector(t *testing.T, root string, l *targetList) *Collector {
	t.Helper()
	// The loop refreshes once at start: wait for it, so that it cannot
	// race the test.
	started := make(chan struct{})
	var once sync.Once
	c, err := New(Config{Hierarchy: Hierarchy{Root: root}, Interval: time.Hour, Targets: l.get,
		loopRefreshed: func() { once.Do(func() { close(started) }) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	<-started
	return c
}

func TestNewRequiresTargets(t *testing.T) {
	if _, err := New(Config{Hierarchy: Hierarchy{Root: "/sys/fs/cgroup"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("New without targets: %v", err)
	}
}

func TestCPURateFromPreviousSample(t *testing.T) {
	root := v1Tree(t, "1", false)
	layer := t.TempDir()
	l := &targetList{}
	c := newCollector(t, root, l)
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1", WritableLayer: layer}

	first, err := c.Get(tg)
	if err != nil {
		t.Fatal(err)
	}
	if !first.HasCgroup || first.HasNanoCores || first.Cgroup.CPUUsageNanos != 123456789 {
		t.Fatalf("first sample: %+v", first)
	}
	// Get answers from the cache: the file changing is not seen until a refresh.
	writeFiles(t, root, map[string]string{"cpuacct/pod/c1/cpuacct.usage": "999999999999\n"})
	if again, _ := c.Get(tg); !reflect.DeepEqual(again, first) {
		t.Fatalf("cached Get resampled: %+v", again)
	}
	l.set(tg)
	c.Refresh()
	second, err := c.Get(tg)
	if err != nil {
		t.Fatal(err)
	}
	if !second.HasNanoCores || second.Cgroup.CPUUsageNanos != 999999999999 {
		t.Fatalf("second sample: %+v", second)
	}
	wall := second.Timestamp.Sub(first.Timestamp)
	if want := nanoCores(999999999999-123456789, wall); second.NanoCores != want || want == 0 {
		t.Fatalf("nano cores %d, want %d", second.NanoCores, want)
	}
	if first.FsBytes == 0 || first.FsInodes != 1 || second.FsTimestamp != first.FsTimestamp {
		t.Fatalf("layer walk not reused within its TTL: first %+v second %+v", first, second)
	}
}

func TestNanoCores(t *testing.T) {
	if got := nanoCores(500_000_000, time.Second); got != 500_000_000 {
		t.Fatalf("half a core: %d", got)
	}
	if got := nanoCores(4_000_000_000, 2*time.Second); got != 2_000_000_000 {
		t.Fatalf("two cores: %d", got)
	}
}

func TestNotRunningHasLayerOnly(t *testing.T) {
	layer := t.TempDir()
	if err := os.WriteFile(filepath.Join(layer, "f"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	c := newCollector(t, root, &targetList{})
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1", WritableLayer: layer}
	s, err := c.Get(tg)
	if err != nil {
		t.Fatal(err)
	}
	if s.HasCgroup || s.FsBytes < 64<<10 || s.FsInodes != 2 {
		t.Fatalf("stopped container: %+v", s)
	}
	// Once its cgroup appears (the container started), Get finds it
	// without waiting for the background refresh.
	writeFiles(t, root, map[string]string{
		"cpuacct/pod/c1/cpuacct.usage":        "5\n",
		"memory/pod/c1/memory.usage_in_bytes": "10\n",
		"memory/pod/c1/memory.stat":           "total_rss 1\n",
	})
	if s, err = c.Get(tg); err != nil || !s.HasCgroup || s.Cgroup.CPUUsageNanos != 5 {
		t.Fatalf("after start: %+v, %v", s, err)
	}
}

func TestRefreshForgetsRemoved(t *testing.T) {
	root := v1Tree(t, "1", false)
	l := &targetList{}
	c := newCollector(t, root, l)
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1"}
	l.set(tg)
	c.Refresh()
	c.mu.Lock()
	_, ok := c.samples["c1"]
	c.mu.Unlock()
	if !ok {
		t.Fatal("refresh did not sample its target")
	}
	l.set()
	c.Refresh()
	c.mu.Lock()
	n := len(c.samples)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d samples kept for removed containers", n)
	}
}

func TestCorruptCgroupFails(t *testing.T) {
	root := v1Tree(t, "1", false)
	writeFiles(t, root, map[string]string{"cpuacct/pod/c1/cpuacct.usage": "x\n"})
	c := newCollector(t, root, &targetList{})
	if _, err := c.Get(Target{ID: "c1", CgroupsPath: "/pod/c1"}); err == nil {
		t.Fatal("corrupt cpuacct.usage sampled without error")
	}
}

func TestBackgroundLoopStopsOnClose(t *testing.T) {
	root := v1Tree(t, "1", false)
	calls := make(chan struct{}, 100)
	c, err := New(Config{Hierarchy: Hierarchy{Root: root}, Interval: time.Millisecond, Targets: func() []Target {
		select { // never block the loop, or Close would wait forever
		case calls <- struct{}{}:
		default:
		}
		return []Target{{ID: "c1", CgroupsPath: "/pod/c1"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.Get(Target{ID: "c1", CgroupsPath: "/pod/c1"}) // someone reads: the loop keeps sampling
		select {
		case <-calls:
		case <-time.After(10 * time.Second):
			t.Fatal("background loop does not refresh")
		}
	}
	c.Close()
	for len(calls) > 0 {
		<-calls
	}
	// After Close returns the loop has exited: no refresh may follow.
	select {
	case <-calls:
		t.Fatal("refresh after Close")
	case <-time.After(20 * time.Millisecond):
	}
}

// The CRI layer reuses encoded stats answers while Generation holds: every
// change to the cache must move it, and reading the cache must not.
func TestGenerationMovesWithEveryChangeOnly(t *testing.T) {
	root := v1Tree(t, "1", false)
	l := &targetList{}
	c := newCollector(t, root, l)
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1"}
	g := c.Generation()
	if _, err := c.Get(tg); err != nil { // first sample: stored
		t.Fatal(err)
	}
	if c.Generation() == g {
		t.Fatal("a new sample left the generation")
	}
	g = c.Generation()
	if _, err := c.Get(tg); err != nil { // cached: nothing changes
		t.Fatal(err)
	}
	if c.Generation() != g {
		t.Fatal("a cached read moved the generation")
	}
	l.set(tg)
	c.Refresh()
	if c.Generation() == g {
		t.Fatal("a refresh left the generation")
	}
	g = c.Generation()
	c.Forget("c1")
	if c.Generation() == g {
		t.Fatal("forgetting a container left the generation")
	}
	g = c.Generation()
	if _, err := c.Pod(PodTarget{ID: "p1", Containers: []string{"c1"}}); err != nil {
		t.Fatal(err)
	}
	if c.Generation() == g {
		t.Fatal("a pod sample left the generation")
	}
}
