package image

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

type pullCounts struct {
	mu      sync.Mutex
	results map[string]int
	bytes   int
	reused  int
}

func (p *pullCounts) PullDone(result string, took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.results[result]++
}

func (p *pullCounts) PullBytes(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
}

func (p *pullCounts) LayerReused() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reused++
}

func (p *pullCounts) snapshot() (map[string]int, int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := map[string]int{}
	for k, v := range p.results {
		r[k] = v
	}
	return r, p.bytes, p.reused
}

func TestObserverHearsResultsBytesAndReusedLayers(t *testing.T) {
	obs := &pullCounts{results: map[string]int{}}
	e := newEnv(t, func(c *Config) { c.Observer = obs })
	r := testkit.NewRegistry(t)
	base := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/base", "b")}, testkit.Gzip)
	top := testkit.MustLayer(t, []testkit.Entry{testkit.File("etc/top", "t")}, testkit.Gzip)
	one := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base)
	two := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base, top)
	r.MustPush(t, "one:1", one)
	r.MustPush(t, "two:1", two)

	e.pull(r.Ref("one:1"))
	baseSize, _ := base.Size()
	if res, bytes, reused := obs.snapshot(); res["success"] != 1 || bytes != int(baseSize) || reused != 0 {
		t.Errorf("after the first pull: results %v, bytes %d (layer is %d), reused %d", res, bytes, baseSize, reused)
	}
	e.pull(r.Ref("two:1"))
	topSize, _ := top.Size()
	if res, bytes, reused := obs.snapshot(); res["success"] != 2 || bytes != int(baseSize+topSize) || reused != 1 {
		t.Errorf("after the second pull: results %v, bytes %d, reused %d (the base layer)", res, bytes, reused)
	}

	if _, err := e.svc.Pull(context.Background(), r.Ref("one:nope"), nil, nil); err == nil {
		t.Fatal("pulled a tag that does not exist")
	}
	// The only caller gives up on a stalled download: cancelled.
	three := smallImage(t, "three", testkit.Gzip)
	r.MustPush(t, "three:1", three)
	r.SetFault(testkit.StallBlob(layerDigests(t, three)[0].Hex, 10, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Pull(ctx, r.Ref("three:1"), nil, nil)
		done <- err
	}()
	waitFor(t, "the stalled download", func() bool { return r.Requests(layerDigests(t, three)[0].Hex) == 1 })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled pull succeeded")
	}
	if res, _, _ := obs.snapshot(); res["failure"] != 1 || res["cancelled"] != 1 || res["success"] != 2 {
		t.Errorf("results = %v, want 2 success, 1 failure, 1 cancelled", res)
	}
}
