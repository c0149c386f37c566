package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// podRunner starts and tears down single-container pods on one runtime the
// way kubelet does.
type podRunner struct {
	d      *benchkit.Daemon
	image  string
	logDir string
	seq    int
}

type pod struct {
	id, container string
	log           string // the container's log file
	// started is how long each call of the start took (startSteps).
	started []time.Duration
}

// The calls of a pod start and of a teardown, in order; bench/pods
// reports each one's p50 beside the sum.
var (
	startSteps    = []string{"RunPodSandbox", "CreateContainer", "StartContainer"}
	teardownSteps = []string{"StopContainer", "StopPodSandbox", "RemovePodSandbox"}
)

// nextName is a fresh pod name; callers in parallel take names first.
func (r *podRunner) nextName() string {
	r.seq++
	return fmt.Sprintf("%s-%03d", r.d.Name, r.seq)
}

// prepare makes the pod's log directory, as kubelet does before it asks
// for the sandbox (not timed).
func (r *podRunner) prepare(name string) error {
	return os.MkdirAll(filepath.Join(r.logDir, name), 0o755)
}

// start runs the pod and its container and returns how long the three
// calls took together.
func (r *podRunner) start(ctx context.Context, name string) (pod, time.Duration, error) {
	cfg := benchkit.PodConfig(name, filepath.Join(r.logDir, name), "")
	t0 := time.Now()
	lap := t0
	split := func() time.Duration {
		now := time.Now()
		d := now.Sub(lap)
		lap = now
		return d
	}
	id, err := r.d.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		return pod{}, 0, r.d.Explain(fmt.Errorf("%s RunPodSandbox %s: %w", r.d.Name, name, err))
	}
	p := pod{id: id, started: []time.Duration{split()}}
	cc := benchkit.WorkloadContainer(r.image)
	cid, err := r.d.Runtime.CreateContainer(ctx, id, cc, cfg)
	if err != nil {
		return p, 0, r.d.Explain(fmt.Errorf("%s CreateContainer in %s: %w", r.d.Name, name, err))
	}
	p.started = append(p.started, split())
	p.container = cid
	p.log = filepath.Join(cfg.LogDirectory, cc.LogPath)
	if err := r.d.Runtime.StartContainer(ctx, cid); err != nil {
		return p, 0, r.d.Explain(fmt.Errorf("%s StartContainer in %s: %w", r.d.Name, name, err))
	}
	p.started = append(p.started, split())
	return p, time.Since(t0), nil
}

// teardown follows kubelet's order: stop the container with its grace
// period, stop the sandbox, remove it (which removes the container). It
// returns the time of each call (teardownSteps).
func (r *podRunner) teardown(ctx context.Context, p pod) ([]time.Duration, error) {
	if p.container != "" {
		if err := benchkit.WaitWorkloadReady(ctx, p.log); err != nil {
			return nil, fmt.Errorf("%s: container %s: %w", r.d.Name, p.container, err)
		}
	}
	var steps []time.Duration
	lap := time.Now()
	split := func() {
		now := time.Now()
		steps = append(steps, now.Sub(lap))
		lap = now
	}
	if p.container != "" {
		if err := r.d.Runtime.StopContainer(ctx, p.container, benchkit.StopGrace); err != nil {
			return nil, r.d.Explain(fmt.Errorf("%s StopContainer %s: %w", r.d.Name, p.container, err))
		}
	}
	split()
	if err := r.d.Runtime.StopPodSandbox(ctx, p.id); err != nil {
		return nil, r.d.Explain(fmt.Errorf("%s StopPodSandbox %s: %w", r.d.Name, p.id, err))
	}
	split()
	if err := r.d.Runtime.RemovePodSandbox(ctx, p.id); err != nil {
		return nil, r.d.Explain(fmt.Errorf("%s RemovePodSandbox %s: %w", r.d.Name, p.id, err))
	}
	split()
	return steps, nil
}
