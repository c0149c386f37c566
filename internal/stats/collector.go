// Package stats samples containers' resource usage (CPU, memory, swap from
// their cgroups; writable-layer bytes and inodes from disk) into a cache that
// a background loop refreshes, so that a kubelet polling stats for many
// containers costs map lookups, not file reads and directory walks.
package stats

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/fsusage"
)

// Target names what to sample for one container.
type Target struct {
	ID            string
	CgroupsPath   string // the runtime spec's linux.cgroupsPath; "" when unknown
	WritableLayer string // directory holding the container's writes
}

// Sample is one container's usage. CPU and memory are absent (HasCgroup
// false) when the cgroup is gone, as for a container that is not running.
type Sample struct {
	Timestamp time.Time
	HasCgroup bool
	Cgroup    CgroupStats
	// NanoCores is the CPU rate since the previous sample; HasNanoCores is
	// false until there are two.
	NanoCores    uint64
	HasNanoCores bool

	FsTimestamp time.Time
	FsBytes     uint64
	FsInodes    uint64
}

// Config configures a Collector.
type Config struct {
	Hierarchy Hierarchy
	// Interval between background refreshes; 0 means 10s.
	Interval time.Duration
	// FsTTL bounds the age of a writable-layer walk; 0 means 10s. Walking
	// is the expensive part: a sample taken sooner reuses the last walk.
	FsTTL time.Duration
	// Targets lists the containers the background loop keeps sampled.
	Targets func() []Target
	Log     *slog.Logger
}

// Collector caches samples. Its methods are safe for concurrent use.
type Collector struct {
	cfg Config

	mu      sync.Mutex
	samples map[string]Sample

	cancel context.CancelFunc
	done   chan struct{}
}

// New starts a collector whose loop runs until Close.
func New(cfg Config) (*Collector, error) {
	if cfg.Targets == nil || cfg.Hierarchy.Root == "" {
		return nil, errdefs.InvalidArgument("stats collector: hierarchy root and targets are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.FsTTL <= 0 {
		cfg.FsTTL = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Collector{cfg: cfg, samples: map[string]Sample{}, cancel: cancel, done: make(chan struct{})}
	go c.loop(ctx)
	return c, nil
}

// Close stops the background loop and waits for it.
func (c *Collector) Close() error {
	c.cancel()
	<-c.done
	return nil
}

func (c *Collector) loop(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.Refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh samples every current target now and forgets containers that are
// no longer targets.
func (c *Collector) Refresh() {
	targets := c.cfg.Targets()
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
		if _, err := c.sample(t); err != nil {
			c.cfg.Log.Debug("sampling container stats failed", "id", t.ID, "err", err)
		}
	}
	c.mu.Lock()
	for id := range c.samples {
		if !keep[id] {
			delete(c.samples, id)
		}
	}
	c.mu.Unlock()
}

// Get returns t's cached sample, sampling it now if the loop has not yet,
// or if the cached one found no cgroup: the container may have started
// since, and probing for a cgroup costs one failed open.
func (c *Collector) Get(t Target) (Sample, error) {
	c.mu.Lock()
	s, ok := c.samples[t.ID]
	c.mu.Unlock()
	if ok && (s.HasCgroup || t.CgroupsPath == "") {
		return s, nil
	}
	return c.sample(t)
}

// sample reads t and stores the result, deriving the CPU rate from the
// previous sample and reusing the previous walk while it is fresh.
func (c *Collector) sample(t Target) (Sample, error) {
	c.mu.Lock()
	prev, hadPrev := c.samples[t.ID]
	c.mu.Unlock()

	now := time.Now()
	s := Sample{Timestamp: now}
	if t.CgroupsPath != "" {
		cg, err := c.cfg.Hierarchy.Read(t.CgroupsPath)
		switch {
		case err == nil:
			s.Cgroup, s.HasCgroup = cg, true
		case !errors.Is(err, errdefs.ErrNotFound):
			return Sample{}, err
		}
	}
	if s.HasCgroup && hadPrev && prev.HasCgroup && s.Cgroup.CPUUsageNanos >= prev.Cgroup.CPUUsageNanos {
		if dt := now.Sub(prev.Timestamp); dt > 0 {
			s.NanoCores = nanoCores(s.Cgroup.CPUUsageNanos-prev.Cgroup.CPUUsageNanos, dt)
			s.HasNanoCores = true
		}
	}
	if hadPrev && !prev.FsTimestamp.IsZero() && now.Sub(prev.FsTimestamp) < c.cfg.FsTTL {
		s.FsTimestamp, s.FsBytes, s.FsInodes = prev.FsTimestamp, prev.FsBytes, prev.FsInodes
	} else if t.WritableLayer != "" {
		b, n, err := fsusage.Walk(t.WritableLayer)
		if err != nil {
			return Sample{}, err
		}
		s.FsTimestamp, s.FsBytes, s.FsInodes = time.Now(), b, n
	}

	c.mu.Lock()
	// A concurrent sampler may have stored a newer sample: keep the newest,
	// so the rate always runs forward.
	if cur, ok := c.samples[t.ID]; !ok || !cur.Timestamp.After(s.Timestamp) {
		c.samples[t.ID] = s
	}
	c.mu.Unlock()
	return s, nil
}

// nanoCores is the CPU time used per wall-clock second, in nanoseconds.
func nanoCores(cpu uint64, wall time.Duration) uint64 {
	return uint64(float64(cpu) / wall.Seconds())
}

// Forget drops a container's sample, e.g. once it is removed.
func (c *Collector) Forget(id string) {
	c.mu.Lock()
	delete(c.samples, id)
	c.mu.Unlock()
}
