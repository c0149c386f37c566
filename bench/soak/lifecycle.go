package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// rpc names one call of a lifecycle, in the order kubelet makes them: it
// stops the container and then the sandbox when a pod goes, and its garbage
// collector removes the container and then the sandbox.
type rpc int

const (
	rpcRun rpc = iota
	rpcCreate
	rpcStart
	rpcExec
	rpcStopContainer
	rpcStopPod
	rpcRemoveContainer
	rpcRemovePod
	numRPCs
)

var rpcNames = [numRPCs]string{"RunPodSandbox", "CreateContainer", "StartContainer", "ExecSync",
	"StopContainer", "StopPodSandbox", "RemoveContainer", "RemovePodSandbox"}

func (r rpc) String() string { return rpcNames[r] }

// execCommand is what each lifecycle runs through ExecSync, as a kubelet
// exec probe would, and execWant its expected output.
var execCommand = []string{"sh", "-c", "echo ok"}

const execWant = "ok\n"

// execTimeout bounds the ExecSync command, as a probe's timeoutSeconds.
const execTimeout = 10 * time.Second

// failure is a lifecycle that an RPC ended.
type failure struct {
	lifecycle int
	rpc       rpc
	err       error
}

// soaker runs lifecycles on one runtime and keeps what they measured.
type soaker struct {
	name         string
	d            *benchkit.Daemon
	image        string
	logDir       string // pod log dirs, one per lifecycle, removed after it
	cgroupParent string // every pod's cgroup_parent, as kubelet sends one
	count        goroutineCounter

	mu       sync.Mutex
	lat      [numRPCs][]time.Duration
	failures []failure
	done     int           // lifecycles that went through every RPC
	wall     time.Duration // wall time of the counted segments
	samples  map[int]sample
}

func (s *soaker) record(r rpc, d time.Duration) {
	s.mu.Lock()
	s.lat[r] = append(s.lat[r], d)
	s.mu.Unlock()
}

// lifecycle runs pod i through every RPC; a negative i is a warm-up
// lifecycle, neither timed nor counted. A failing RPC ends it: the failure
// is recorded, the pod torn down as well as it goes (untimed) and nil
// returned, so the soak carries on; only a cancelled ctx is an error.
func (s *soaker) lifecycle(ctx context.Context, i int) error {
	counted := i >= 0
	name := fmt.Sprintf("soak-%05d", i)
	if !counted {
		name = fmt.Sprintf("warm-%03d", -i)
	}
	logDir := filepath.Join(s.logDir, name)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(logDir) // kubelet removes a deleted pod's logs
	rt := s.d.Runtime
	cfg := benchkit.PodConfig(name, logDir, s.cgroupParent)
	cc := benchkit.WorkloadContainer(s.image)
	var podID, ctrID string
	call := func(r rpc, fn func() error) bool {
		t0 := time.Now()
		err := fn()
		d := time.Since(t0)
		if err != nil {
			if ctx.Err() == nil {
				s.mu.Lock()
				s.failures = append(s.failures, failure{lifecycle: i, rpc: r, err: s.d.Explain(err)})
				s.mu.Unlock()
			}
			return false
		}
		if counted {
			s.record(r, d)
		}
		return true
	}
	ok := call(rpcRun, func() (err error) {
		podID, err = rt.RunPodSandbox(ctx, cfg, "")
		return err
	}) && call(rpcCreate, func() (err error) {
		ctrID, err = rt.CreateContainer(ctx, podID, cc, cfg)
		return err
	}) && call(rpcStart, func() error {
		return rt.StartContainer(ctx, ctrID)
	})
	// Not timed: a SIGTERM before the workload's trap is set would cost
	// the whole grace period (see WorkloadCommand).
	if ok {
		if err := benchkit.WaitWorkloadReady(ctx, filepath.Join(logDir, cc.LogPath)); err != nil {
			ok = call(rpcStart, func() error { return fmt.Errorf("started container %s: %w", ctrID, err) })
		}
	}
	ok = ok && call(rpcExec, func() error {
		stdout, stderr, err := rt.ExecSync(ctx, ctrID, execCommand, execTimeout)
		if err == nil && string(stdout) != execWant {
			err = fmt.Errorf("ExecSync %q: stdout %q, stderr %q, want stdout %q", execCommand, stdout, stderr, execWant)
		}
		return err
	}) && call(rpcStopContainer, func() error {
		return rt.StopContainer(ctx, ctrID, benchkit.StopGrace)
	}) && call(rpcStopPod, func() error {
		return rt.StopPodSandbox(ctx, podID)
	}) && call(rpcRemoveContainer, func() error {
		return rt.RemoveContainer(ctx, ctrID)
	}) && call(rpcRemovePod, func() error {
		return rt.RemovePodSandbox(ctx, podID)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ok {
		if podID != "" {
			_ = rt.StopPodSandbox(ctx, podID)
			_ = rt.RemovePodSandbox(ctx, podID)
		}
		return nil
	}
	if counted {
		s.mu.Lock()
		s.done++
		s.mu.Unlock()
	}
	return nil
}

// maxFailures ends the soak on a runtime that fails this many lifecycles:
// past that it measures a broken runtime, not a steady one.
const maxFailures = 20

// segment runs lifecycles [from, to) with width at a time and adds its wall
// time to the runtime's; negative indices are warm-up, not counted.
func (s *soaker) segment(ctx context.Context, from, to, width int) error {
	counted := from >= 0
	next := make(chan int)
	errs := make(chan error, width)
	var wg sync.WaitGroup
	t0 := time.Now()
	for range width {
		wg.Go(func() {
			for i := range next {
				if err := s.lifecycle(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := from; i < to; i++ {
		if n := s.failureCount(); n >= maxFailures {
			err = fmt.Errorf("%s failed %d lifecycles; stopping (first: %s)", s.name, n, s.failureLine(s.firstFailure()))
			break
		}
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if counted {
		s.mu.Lock()
		s.wall += time.Since(t0)
		s.mu.Unlock()
	}
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func (s *soaker) failureCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.failures)
}

func (s *soaker) firstFailure() failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures[0]
}

func (s *soaker) failureLine(f failure) string {
	return fmt.Sprintf("lifecycle %d, %s: %v", f.lifecycle, f.rpc, f.err)
}

// lifecyclesPerSec is the counted lifecycles that completed over the wall
// time of the counted segments.
func (s *soaker) lifecyclesPerSec() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.done) / s.wall.Seconds()
}

// boundaries splits n lifecycles into about segments parts whose ends
// include every checkpoint, so the runtimes alternate often and are idle
// when sampled: the sorted, distinct ends, the last one n.
func boundaries(n, segments int, checkpoints []int) []int {
	var ends []int
	for k := 1; k <= segments; k++ {
		ends = append(ends, n*k/segments)
	}
	for _, c := range checkpoints {
		if c > 0 && c <= n {
			ends = append(ends, c)
		}
	}
	ends = append(ends, n)
	slices.Sort(ends)
	ends = slices.Compact(ends)
	if len(ends) > 0 && ends[0] == 0 {
		ends = ends[1:]
	}
	return ends
}

// checkpointsOf are the lifecycle counts at which resources are sampled:
// before the first, half way and after the last.
func checkpointsOf(n int) []int {
	return slices.Compact([]int{0, n / 2, n})
}
