package image

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// layerWatchers routes download progress of a layer to the watchdog of every
// pull waiting for it.
type layerWatchers struct {
	mu sync.Mutex
	m  map[digest.Digest]map[*watchdog]int
}

func (lw *layerWatchers) watch(id digest.Digest, wd *watchdog) func() {
	if wd == nil {
		return func() {}
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.m == nil {
		lw.m = map[digest.Digest]map[*watchdog]int{}
	}
	if lw.m[id] == nil {
		lw.m[id] = map[*watchdog]int{}
	}
	lw.m[id][wd]++
	return func() {
		lw.mu.Lock()
		defer lw.mu.Unlock()
		if lw.m[id][wd]--; lw.m[id][wd] == 0 {
			delete(lw.m[id], wd)
		}
		if len(lw.m[id]) == 0 {
			delete(lw.m, id)
		}
	}
}

func (lw *layerWatchers) poke(id digest.Digest) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for wd := range lw.m[id] {
		wd.progress()
	}
}

// progressTracker aggregates the layer downloads of a pull for Progress
// callbacks, throttled so a fast pull does not flood a CLI.
type progressTracker struct {
	mu     sync.Mutex
	p      Progress
	sizes  []int64
	report func(Progress)
	last   time.Time
}

const progressInterval = 100 * time.Millisecond

func newProgressTracker(ref string, layers []ocispec.Descriptor, report func(Progress)) *progressTracker {
	t := &progressTracker{report: report, p: Progress{Ref: ref, Layers: len(layers)}}
	for _, l := range layers {
		t.sizes = append(t.sizes, l.Size)
		t.p.Total += l.Size
	}
	return t
}

func (t *progressTracker) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.report = nil
}

func (t *progressTracker) add(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Done = min(t.p.Done+int64(n), t.p.Total)
	if time.Since(t.last) >= progressInterval {
		t.emitLocked()
	}
}

// layerPresent counts a layer that needed no download as done.
func (t *progressTracker) layerPresent(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Done = min(t.p.Done+t.sizes[i], t.p.Total)
	t.p.LayersDone++
	t.emitLocked()
}

func (t *progressTracker) layerFetched() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.LayersDone++
	t.emitLocked()
}

// emitLocked reports under the lock, so callbacks arrive one at a time and in
// order.
func (t *progressTracker) emitLocked() {
	t.last = time.Now()
	if t.report != nil {
		t.report(t.p)
	}
}
