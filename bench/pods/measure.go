package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// side is one runtime with everything measured on it.
type side struct {
	name   string
	d      *benchkit.Daemon
	runner *podRunner

	startSeq, startPar []time.Duration
	teardown           []time.Duration
	// steps holds each call's time (startSteps: sequential starts;
	// teardownSteps: the teardowns counted in teardown).
	steps        map[string][]time.Duration
	empty        overhead // the daemon just started on an empty root
	list         []time.Duration
	version      []time.Duration // the floor of a CRI round trip
	idle, loaded overhead
	pods         int
}

// addSteps files each call's time under its name.
func (s *side) addSteps(names []string, ds []time.Duration) {
	if s.steps == nil {
		s.steps = map[string][]time.Duration{}
	}
	for i, d := range ds {
		s.steps[names[i]] = append(s.steps[names[i]], d)
	}
}

// addTeardown counts one teardown: its sum and each call.
func (s *side) addTeardown(steps []time.Duration) {
	var sum time.Duration
	for _, d := range steps {
		sum += d
	}
	s.teardown = append(s.teardown, sum)
	s.addSteps(teardownSteps, steps)
}

// orderOf returns both sides in the order of round i.
func orderOf(i int, crdl, ctrd *side) []*side {
	if cradleFirst(i) {
		return []*side{crdl, ctrd}
	}
	return []*side{ctrd, crdl}
}

// warmUp runs one pod per runtime to completion: first use of code paths,
// image unpack (containerd unpacks lazily on first create), the bridge.
func warmUp(ctx context.Context, crdl, ctrd *side) error {
	for _, s := range []*side{crdl, ctrd} {
		name := s.runner.nextName()
		if err := s.runner.prepare(name); err != nil {
			return err
		}
		p, _, err := s.runner.start(ctx, name)
		if err != nil {
			return err
		}
		if _, err := s.runner.teardown(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// sequential starts and tears down one pod at a time, n per runtime,
// alternating who goes first.
func sequential(ctx context.Context, n int, crdl, ctrd *side) error {
	for i := range n {
		for _, s := range orderOf(i, crdl, ctrd) {
			name := s.runner.nextName()
			if err := s.runner.prepare(name); err != nil {
				return err
			}
			p, d, err := s.runner.start(ctx, name)
			if err != nil {
				return err
			}
			s.startSeq = append(s.startSeq, d)
			s.addSteps(startSteps, p.started)
			t, err := s.runner.teardown(ctx, p)
			if err != nil {
				return err
			}
			s.addTeardown(t)
		}
	}
	return nil
}

// parallel starts width pods at once per round, n pods per runtime in all,
// and tears each round's pods down (in parallel too, untimed) before the
// other runtime's turn.
func parallel(ctx context.Context, n, width int, crdl, ctrd *side) error {
	for i := 0; i*width < n; i++ {
		k := min(width, n-i*width)
		for _, s := range orderOf(i, crdl, ctrd) {
			names := make([]string, k)
			for j := range names {
				names[j] = s.runner.nextName()
				if err := s.runner.prepare(names[j]); err != nil {
					return err
				}
			}
			pods := make([]pod, k)
			durs := make([]time.Duration, k)
			errs := make([]error, k)
			var wg sync.WaitGroup
			for j := range k {
				wg.Go(func() { pods[j], durs[j], errs[j] = s.runner.start(ctx, names[j]) })
			}
			wg.Wait()
			for j := range k {
				if errs[j] != nil {
					return errs[j]
				}
			}
			s.startPar = append(s.startPar, durs...)
			for j := range k {
				wg.Go(func() { _, errs[j] = s.runner.teardown(ctx, pods[j]) })
			}
			wg.Wait()
			for j := range k {
				if errs[j] != nil {
					return errs[j]
				}
			}
		}
	}
	return nil
}

// loaded starts m pods on each runtime, measures memory, alternates
// ListContainers calls between the two, then tears the pods down.
func loaded(ctx context.Context, m, calls int, settle time.Duration, crdl, ctrd *side) error {
	for _, s := range []*side{crdl, ctrd} {
		o, err := settledOverhead(ctx, s.d, settle)
		if err != nil {
			return err
		}
		s.idle = o
	}
	pods := map[*side][]pod{}
	for i := range m {
		for _, s := range orderOf(i, crdl, ctrd) {
			name := s.runner.nextName()
			if err := s.runner.prepare(name); err != nil {
				return err
			}
			p, _, err := s.runner.start(ctx, name)
			if err != nil {
				return err
			}
			pods[s] = append(pods[s], p)
		}
	}
	fmt.Fprintf(os.Stderr, "%d pods running on each runtime; memory ...\n", m)
	for _, s := range []*side{crdl, ctrd} {
		if err := waitRunning(ctx, s, m); err != nil {
			return err
		}
		o, err := settledOverhead(ctx, s.d, settle)
		if err != nil {
			return err
		}
		s.loaded, s.pods = o, m
	}
	fmt.Fprintf(os.Stderr, "ListContainers and Version x %d each ...\n", calls)
	const block = 10
	for i := 0; i*block < calls; i++ {
		for _, s := range orderOf(i, crdl, ctrd) {
			for range min(block, calls-i*block) {
				t0 := time.Now()
				ctrs, err := s.d.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{})
				d := time.Since(t0)
				if err != nil {
					return s.d.Explain(fmt.Errorf("%s ListContainers: %w", s.name, err))
				}
				if len(ctrs) != m {
					return fmt.Errorf("%s lists %d containers, want %d", s.name, len(ctrs), m)
				}
				s.list = append(s.list, d)
			}
			// Version does no work in either runtime: its latency is the
			// client, gRPC and scheduling share of every call.
			for range min(block, calls-i*block) {
				t0 := time.Now()
				if _, err := s.d.Runtime.Version(ctx, "v1"); err != nil {
					return s.d.Explain(fmt.Errorf("%s Version: %w", s.name, err))
				}
				s.version = append(s.version, time.Since(t0))
			}
		}
	}
	for i := range m {
		for _, s := range orderOf(i, crdl, ctrd) {
			t, err := s.runner.teardown(ctx, pods[s][i])
			if err != nil {
				return err
			}
			s.addTeardown(t)
		}
	}
	return nil
}

// waitRunning polls until the runtime reports m running containers.
func waitRunning(ctx context.Context, s *side, m int) error {
	deadline := time.Now().Add(time.Minute)
	filter := &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}
	for {
		ctrs, err := s.d.Runtime.ListContainers(ctx, filter)
		if err != nil {
			return s.d.Explain(err)
		}
		if len(ctrs) == m {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d containers running after a minute", s.name, len(ctrs), m)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// settledOverhead samples the runtime's memory three times, settle apart
// (a daemon frees and a monitor faults in pages for a moment after work),
// and keeps the middle sample.
func settledOverhead(ctx context.Context, d *benchkit.Daemon, settle time.Duration) (overhead, error) {
	var samples []overhead
	for i := range 3 {
		if i > 0 {
			select {
			case <-ctx.Done():
				return overhead{}, ctx.Err()
			case <-time.After(settle):
			}
		}
		o, err := measureOverhead(d)
		if err != nil {
			return overhead{}, err
		}
		samples = append(samples, o)
	}
	return middle(samples), nil
}

// middle is the sample with the median PSS.
func middle(s []overhead) overhead {
	sorted := slices.Clone(s)
	slices.SortFunc(sorted, func(a, b overhead) int { return cmp.Compare(a.pssKiB, b.pssKiB) })
	return sorted[len(sorted)/2]
}
