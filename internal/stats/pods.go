package stats

import (
	"errors"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// PodTarget names what to sample for one pod.
type PodTarget struct {
	ID string
	// CgroupsPath is the pod's own cgroup (kubelet's cgroup_parent: an
	// absolute cgroupfs path or a systemd slice). "" when the pod has none
	// of its own, as under the daemon's shared default parent: the pod's
	// usage is then the sum of its containers'.
	CgroupsPath string
	// NetNS is the pinned network namespace; "" for host-network pods.
	NetNS string
	// Containers are the IDs of the pod's containers, for the sum.
	Containers []string
}

// PodSample is one pod's usage.
type PodSample struct {
	Timestamp time.Time
	// HasCgroup is false while neither the pod's cgroup nor any container's
	// exists. Summed tells the figures are the containers' sum.
	HasCgroup    bool
	Summed       bool
	Cgroup       CgroupStats
	NanoCores    uint64
	HasNanoCores bool
	// Detail is read from the pod's own cgroup only; a sum has Procs alone.
	Detail    Detail
	HasDetail bool

	// Network is sampled by the background loop and at a pod's first
	// sample; HasNetwork is false for host-network pods and when the
	// namespace could not be read.
	NetTimestamp time.Time
	Network      []Interface
	HasNetwork   bool
}

// Pod returns t's cached sample, sampling it now if the loop has not, or
// its cgroup if no cgroup was found then (the pod's first container may
// have started since). The network is read on the caller's path only for
// a pod never sampled before: entering a namespace takes a thread of its
// own, which the loop pays, not every RPC; but a pod's first answer should
// not lack its network for up to an interval. A pod sampled long ago,
// while the loop idled for want of readers, is sampled again.
func (c *Collector) Pod(t PodTarget) (PodSample, error) {
	fresh := c.read()
	c.mu.Lock()
	s, ok := c.pods[t.ID]
	c.mu.Unlock()
	full := c.fullWanted(time.Now())
	if ok && s.HasCgroup {
		if fresh(s.Timestamp) {
			return s, nil
		}
		return c.samplePod(t, true, full)
	}
	return c.samplePod(t, !ok, full)
}

// PodFull is Pod for metrics: a pod with a cgroup of its own gets a full
// Detail (see GetFull); a summed pod's Detail is its containers' Procs,
// which metrics read from the containers themselves.
func (c *Collector) PodFull(t PodTarget) (PodSample, error) {
	c.metricsAsked.Store(time.Now().UnixNano())
	s, err := c.Pod(t)
	if err != nil || !s.HasCgroup || s.Summed || s.Detail.Full || !s.HasDetail {
		return s, err
	}
	return c.samplePod(t, false, true)
}

// CachedPod returns t's cached sample without reading anything.
func (c *Collector) CachedPod(id string) (PodSample, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.pods[id]
	return s, ok
}

func (c *Collector) refreshPods(full bool) {
	targets := c.cfg.Pods()
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
		if _, err := c.samplePod(t, true, full); err != nil {
			c.cfg.Log.Debug("sampling pod stats failed", "id", t.ID, "err", err)
		}
	}
	c.mu.Lock()
	for id := range c.pods {
		if !keep[id] {
			delete(c.pods, id)
		}
	}
	c.mu.Unlock()
	c.gen.Add(1)
}

func (c *Collector) samplePod(t PodTarget, withNetwork, full bool) (PodSample, error) {
	c.mu.Lock()
	prev, hadPrev := c.pods[t.ID]
	c.mu.Unlock()

	now := time.Now()
	s := PodSample{Timestamp: now}
	if t.CgroupsPath != "" {
		cg, err := c.src.Cgroup(t.CgroupsPath, full)
		switch {
		case err == nil:
			s.Cgroup, s.HasCgroup = cg.Stats, true
			s.Detail, s.HasDetail = c.detail(t.ID, cg)
		case !errors.Is(err, errdefs.ErrNotFound):
			return PodSample{}, err
		}
		if s.HasCgroup && hadPrev && prev.HasCgroup && !prev.Summed && s.Cgroup.CPUUsageNanos >= prev.Cgroup.CPUUsageNanos {
			if dt := now.Sub(prev.Timestamp); dt > 0 {
				s.NanoCores, s.HasNanoCores = nanoCores(s.Cgroup.CPUUsageNanos-prev.Cgroup.CPUUsageNanos, dt), true
			}
		}
	} else {
		c.sumContainers(t.Containers, &s)
	}

	switch {
	case withNetwork && t.NetNS != "":
		ifs, err := c.src.Network(t.NetNS)
		if err != nil {
			// A pod being stopped loses its namespace under us: report
			// no network rather than fail the pod's other figures.
			c.cfg.Log.Debug("reading pod network failed", "id", t.ID, "err", err)
			break
		}
		s.NetTimestamp, s.Network, s.HasNetwork = time.Now(), ifs, true
	case !withNetwork && hadPrev:
		s.NetTimestamp, s.Network, s.HasNetwork = prev.NetTimestamp, prev.Network, prev.HasNetwork
	}

	c.mu.Lock()
	if cur, ok := c.pods[t.ID]; !ok || !cur.Timestamp.After(s.Timestamp) {
		c.pods[t.ID] = s
	}
	c.mu.Unlock()
	c.gen.Add(1)
	return s, nil
}

// sumContainers adds up the cached samples of the running containers. A
// pod's rate is known only when every summed container's is.
func (c *Collector) sumContainers(ids []string, s *PodSample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Summed, s.HasNanoCores = true, true
	for _, id := range ids {
		cs, ok := c.samples[id]
		if !ok || !cs.HasCgroup {
			continue
		}
		s.HasCgroup = true
		if cs.Timestamp.Before(s.Timestamp) {
			s.Timestamp = cs.Timestamp // the oldest figure in the sum dates it
		}
		a, b := &s.Cgroup, &cs.Cgroup
		a.CPUUsageNanos += b.CPUUsageNanos
		a.MemoryUsage += b.MemoryUsage
		a.WorkingSet += b.WorkingSet
		a.RSS += b.RSS
		a.PageFaults += b.PageFaults
		a.MajorPageFaults += b.MajorPageFaults
		a.Swap += b.Swap
		a.HasSwap = a.HasSwap || b.HasSwap
		s.NanoCores += cs.NanoCores
		s.HasNanoCores = s.HasNanoCores && cs.HasNanoCores
		p := &s.Detail.Procs
		p.Processes += cs.Detail.Procs.Processes
		p.Threads += cs.Detail.Procs.Threads
		p.FDs += cs.Detail.Procs.FDs
		p.Sockets += cs.Detail.Procs.Sockets
	}
	s.HasNanoCores = s.HasNanoCores && s.HasCgroup
}
