package stats

import (
	"sync/atomic"
	"testing"
	"time"
)

// The loop samples only while someone reads: a node whose kubelet takes its
// stats elsewhere must not pay a read per container per interval, and a
// read after such a pause must not answer from a sample taken long before.
func TestLoopIdlesWithoutReaders(t *testing.T) {
	src, w := newFakeSource(), &fakeWorld{}
	src.setCgroup("/pod/c1", CgroupStats{MemoryUsage: 4000})
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1"}
	w.set([]Target{tg}, nil)

	const interval = 5 * time.Millisecond
	var refreshes atomic.Int64
	started := make(chan struct{})
	c, err := New(Config{Source: src, Interval: interval, Targets: w.targets, Pods: w.podTargets,
		loopRefreshed: func() {
			if refreshes.Add(1) == 1 {
				close(started)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-started

	// Nobody has read: many intervals pass without a refresh. (The one
	// negative waited for; 40 intervals is long enough to see a loop that
	// ignores demand, which would refresh about 40 times.)
	time.Sleep(40 * interval)
	if n := refreshes.Load(); n != 1 {
		t.Fatalf("loop refreshed %d times with nobody reading, want only the start-up refresh", n)
	}

	// A read after the idle spell samples again on the caller's path.
	before := time.Now()
	s, err := c.Get(tg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Timestamp.Before(before) {
		t.Fatalf("Get after an idle spell served a sample from %v, older than the call (%v)", s.Timestamp, before)
	}
	// And it wakes the loop, which keeps the samples fresh while reads go on.
	deadline := time.Now().Add(10 * time.Second)
	for refreshes.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("loop did not resume after a read: %d refreshes", refreshes.Load())
		}
		if _, err := c.Get(tg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval)
	}
}

// Stats calls take light samples; a metrics call gets a full one on its
// path, and while metrics are read the loop samples fully.
func TestFullDetailOnlyForMetrics(t *testing.T) {
	src, w := newFakeSource(), &fakeWorld{}
	src.setCgroup("/pod/c1", CgroupStats{MemoryUsage: 4000})
	tg := Target{ID: "c1", CgroupsPath: "/pod/c1"}
	w.set([]Target{tg}, nil)
	c := newFakeCollector(t, src, w)

	s, err := c.Get(tg)
	if err != nil || s.Detail.Full {
		t.Fatalf("stats read: full=%v, %v; want a light sample", s.Detail.Full, err)
	}
	if s, err = c.GetFull(tg); err != nil || !s.Detail.Full {
		t.Fatalf("metrics read: full=%v, %v; want a full sample", s.Detail.Full, err)
	}
	c.Refresh()
	if s, err = c.Get(tg); err != nil || !s.Detail.Full {
		t.Fatalf("loop while metrics are read: full=%v, %v", s.Detail.Full, err)
	}
}
