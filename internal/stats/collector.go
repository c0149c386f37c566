// Package stats samples containers' and pods' resource usage (CPU, memory,
// swap, pressure and cadvisor's other figures from their cgroups;
// writable-layer bytes and inodes from disk; a pod's interface counters from
// inside its network namespace) into a cache that a background loop
// refreshes, so that a kubelet polling stats for many containers costs map
// lookups, not file reads, directory walks and namespace switches.
package stats

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
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

	// Detail holds the figures only metrics need; HasDetail is false when
	// they could not be read, which costs no CPU and memory stats.
	Detail    Detail
	HasDetail bool

	FsTimestamp time.Time
	FsBytes     uint64
	FsInodes    uint64
	// Fs is the filesystem holding the writable layer; HasFs false if unknown.
	Fs    FsInfo
	HasFs bool
}

// Config configures a Collector.
type Config struct {
	Hierarchy Hierarchy
	// Source is what samples are read from; nil means HostSource(Hierarchy).
	Source Source
	// Interval between background refreshes; 0 means 10s.
	Interval time.Duration
	// FsTTL bounds the age of a writable-layer walk; 0 means 10s. Walking
	// is the expensive part: a sample taken sooner reuses the last walk.
	FsTTL time.Duration
	// Targets lists the containers the background loop keeps sampled.
	Targets func() []Target
	// Pods lists the pods the loop keeps sampled; nil samples none.
	Pods func() []PodTarget
	Log  *slog.Logger

	// loopRefreshed, if set, runs after each refresh of the loop: tests
	// wait for the first one so that it cannot race them.
	loopRefreshed func()
}

// Collector caches samples. Its methods are safe for concurrent use.
type Collector struct {
	cfg Config
	src Source

	mu      sync.Mutex
	samples map[string]Sample
	pods    map[string]PodSample
	// gen counts changes to samples and pods; see Generation.
	gen atomic.Uint64

	// asked is when a caller last wanted a sample (unix nanoseconds): the
	// loop samples only while someone reads, so a node whose kubelet takes
	// its stats elsewhere (cadvisor) pays nothing per pod.
	asked atomic.Int64
	// metricsAsked is the same for metrics calls, the only readers of a
	// full Detail: without them the loop takes light samples.
	metricsAsked atomic.Int64

	cancel context.CancelFunc
	done   chan struct{}
}

// New starts a collector whose loop runs until Close.
func New(cfg Config) (*Collector, error) {
	if cfg.Targets == nil || (cfg.Hierarchy.Root == "" && cfg.Source == nil) {
		return nil, errdefs.InvalidArgument("stats collector: a hierarchy root or source, and targets are required")
	}
	if cfg.Source == nil {
		cfg.Source = HostSource(cfg.Hierarchy)
	}
	if cfg.Pods == nil {
		cfg.Pods = func() []PodTarget { return nil }
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
	c := &Collector{
		cfg: cfg, src: cfg.Source, samples: map[string]Sample{}, pods: map[string]PodSample{},
		cancel: cancel, done: make(chan struct{}),
	}
	go c.loop(ctx)
	return c, nil
}

// Generation changes after every change to the cached samples (a new
// sample, a container or pod forgotten). Read it before reading samples:
// what was built from them is stale once Generation differs. The CRI
// layer caches encoded stats responses on it, so they are exactly as fresh
// as the samples: at most Interval old, as before.
func (c *Collector) Generation() uint64 { return c.gen.Load() }

// PSI tells whether samples carry pressure stall information, so that
// metric descriptors can be fixed at start-up.
func (c *Collector) PSI() bool { return c.cfg.Hierarchy.PSI }

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
	for first := true; ; first = false {
		if first || c.wanted(time.Now()) {
			c.Refresh()
			if c.cfg.loopRefreshed != nil {
				c.cfg.loopRefreshed()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// idleAfter is how long after the last read the loop keeps sampling:
// kubelet reads every 10 s or so when it takes stats from CRI, so a few
// intervals without a read mean nobody is reading.
func (c *Collector) idleAfter() time.Duration { return 3 * c.cfg.Interval }

// wanted tells whether someone read samples recently enough to keep them
// fresh in the background.
func (c *Collector) wanted(now time.Time) bool {
	return now.Sub(time.Unix(0, c.asked.Load())) < c.idleAfter()
}

// fullWanted tells whether metrics were read recently: then every sample
// reads the full Detail.
func (c *Collector) fullWanted(now time.Time) bool {
	return now.Sub(time.Unix(0, c.metricsAsked.Load())) < c.idleAfter()
}

// read marks a read, which keeps the loop sampling, and returns when the
// loop's samples may be served: while it runs, anything it stored is; once
// it has idled, a sample older than an interval is read again on the
// caller's path.
func (c *Collector) read() (fresh func(ts time.Time) bool) {
	now := time.Now()
	wasWanted := c.wanted(now)
	c.asked.Store(now.UnixNano())
	return func(ts time.Time) bool { return wasWanted || now.Sub(ts) < c.cfg.Interval }
}

// Refresh samples every current target now and forgets containers and pods
// that are no longer targets. Pods come after containers: a pod without a
// cgroup of its own sums its containers' fresh samples.
func (c *Collector) Refresh() {
	full := c.fullWanted(time.Now())
	c.refreshContainers(full)
	c.refreshPods(full)
}

func (c *Collector) refreshContainers(full bool) {
	targets := c.cfg.Targets()
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
		if _, err := c.sample(t, full); err != nil {
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
	c.gen.Add(1)
}

// Get returns t's cached sample, sampling it now if the loop has not yet,
// if the cached one found no cgroup (the container may have started
// since, and probing for a cgroup costs one failed open), or if the loop
// had idled for want of readers and the sample is old.
func (c *Collector) Get(t Target) (Sample, error) {
	fresh := c.read()
	c.mu.Lock()
	s, ok := c.samples[t.ID]
	c.mu.Unlock()
	if ok && (s.HasCgroup || t.CgroupsPath == "") && fresh(s.Timestamp) {
		return s, nil
	}
	return c.sample(t, c.fullWanted(time.Now()))
}

// GetFull is Get for metrics: the sample's Detail is full (when it could be
// read), sampling again on the caller's path if the cached one is light.
func (c *Collector) GetFull(t Target) (Sample, error) {
	c.metricsAsked.Store(time.Now().UnixNano())
	s, err := c.Get(t)
	if err != nil || !s.HasCgroup || s.Detail.Full || !s.HasDetail {
		return s, err
	}
	return c.sample(t, true)
}

// sample reads t and stores the result, deriving the CPU rate from the
// previous sample and reusing the previous walk while it is fresh.
func (c *Collector) sample(t Target, full bool) (Sample, error) {
	c.mu.Lock()
	prev, hadPrev := c.samples[t.ID]
	c.mu.Unlock()

	now := time.Now()
	s := Sample{Timestamp: now}
	if t.CgroupsPath != "" {
		cg, err := c.src.Cgroup(t.CgroupsPath, full)
		switch {
		case err == nil:
			s.Cgroup, s.HasCgroup = cg.Stats, true
			s.Detail, s.HasDetail = c.detail(t.ID, cg)
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
		s.Fs, s.HasFs = prev.Fs, prev.HasFs
	} else if t.WritableLayer != "" {
		b, n, err := c.src.Layer(t.WritableLayer)
		if err != nil {
			return Sample{}, err
		}
		s.FsTimestamp, s.FsBytes, s.FsInodes = time.Now(), b, n
		if fi, err := c.src.Filesystem(t.WritableLayer); err == nil {
			s.Fs, s.HasFs = fi, true
		}
	}

	c.mu.Lock()
	// A concurrent sampler may have stored a newer sample: keep the newest,
	// so the rate always runs forward.
	if cur, ok := c.samples[t.ID]; !ok || !cur.Timestamp.After(s.Timestamp) {
		c.samples[t.ID] = s
	}
	c.mu.Unlock()
	c.gen.Add(1)
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
	c.gen.Add(1)
}

// detail takes the metrics-only figures of a sample; failing them must not
// cost the CPU and memory stats kubelet depends on, so a failure is logged
// only.
func (c *Collector) detail(id string, cg CgroupSample) (Detail, bool) {
	if cg.DetailErr != nil {
		c.cfg.Log.Debug("reading cgroup details failed", "id", id, "err", cg.DetailErr)
		return Detail{}, false
	}
	return cg.Detail, true
}
