package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// result is one runtime's figures of one round.
type result struct {
	runtime string
	round   int
	pods    int
	fill    time.Duration // manifests placed → all pods Running and ready
	drain   time.Duration // manifests removed → no pod running
	removed time.Duration // manifests removed → no pod sandbox left
	steady  time.Duration // the CPU window

	runtimeCPU, kubeletCPU time.Duration // over the window
	monitors, pauses       int
	rssKiB, pssKiB         int64 // runtime processes at steady state
}

// settle lets kubelet finish what follows the last start (status updates,
// the first stats of each pod) before the steady-state window opens.
const settle = 15 * time.Second

// runSide runs one runtime with a kubelet of its own through fill, steady
// state and drain.
func runSide(ctx context.Context, o options, fx *benchkit.PodFixture, work, name string, round int) (r result, err error) {
	// Short names: cradle's attach sockets live under the state dir, and a
	// unix socket path has 108 bytes at most.
	dir := filepath.Join(work, fmt.Sprintf("%c%d", name[0], round))
	net := benchkit.NewNetwork(filepath.Join(dir, "cni"), "bench-density-"+name, bridgeOf(name), subnetOf(name))
	var d *benchkit.Daemon
	if name == "cradle" {
		d, err = benchkit.CradlePods{
			Comment: "written by cradle's bench/density",
			Bin:     fx.CradleBin, CertsDir: fx.CertsDir, Dir: dir, Net: net,
		}.Start(ctx, criTimeout)
	} else {
		d, err = benchkit.ContainerdPods{
			Comment: "written by cradle's bench/density: a private containerd for the density benchmark",
			Bin:     o.Containerd, Runc: o.Runc, SandboxImage: fx.Images.Pause, CertsDir: fx.CertsDir,
			Dir: dir, Net: net,
		}.Start(ctx, criTimeout)
	}
	if err != nil {
		return r, err
	}
	k := &kubelet{bin: o.kubelet, dir: filepath.Join(dir, "kubelet"), socket: d.Socket}
	defer func() {
		_ = k.removeManifests()
		k.stop()
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		d.Shutdown(cctx)
		net.RemoveBridge()
	}()
	if err := benchkit.PullPodImages(ctx, d, fx.Images, name == "containerd"); err != nil {
		return r, err
	}
	if err := k.start(ctx, max(110, o.pods)); err != nil {
		return r, err
	}
	r = result{runtime: name, round: round, pods: o.pods, steady: o.steady}

	t0 := time.Now()
	if err := k.writeManifests(o.pods, fx.Images.Workload); err != nil {
		return r, err
	}
	if err := poll(ctx, 5*time.Minute, func() (bool, error) {
		l, err := k.pods(ctx)
		return err == nil && l.running() == o.pods, nil
	}); err != nil {
		return r, fmt.Errorf("%d pods Running: %w%s", o.pods, err, k.logTail())
	}
	r.fill = time.Since(t0)
	fmt.Fprintf(os.Stderr, "  %d pods Running in %v; settling %v, then %v of steady state ...\n", o.pods, r.fill.Round(time.Millisecond), settle, o.steady)

	if err := sleepCtx(ctx, settle); err != nil {
		return r, err
	}
	if err := measureSteady(ctx, d, k, &r); err != nil {
		return r, err
	}

	t0 = time.Now()
	if err := k.removeManifests(); err != nil {
		return r, err
	}
	if err := poll(ctx, 5*time.Minute, func() (bool, error) { return noPodRunning(ctx, d) }); err != nil {
		return r, fmt.Errorf("drain: %w", err)
	}
	r.drain = time.Since(t0)
	if err := poll(ctx, 5*time.Minute, func() (bool, error) {
		sbs, err := d.Runtime.ListPodSandbox(ctx, nil)
		if err != nil {
			return false, d.Explain(err)
		}
		return len(sbs) == 0, nil
	}); err != nil {
		return r, fmt.Errorf("removal: %w", err)
	}
	r.removed = time.Since(t0)
	return r, nil
}

// noPodRunning tells whether every pod is down: no sandbox READY and no
// container running. That is the runtime's part of a drain; kubelet removes
// the stopped sandboxes later, in its container GC (once a minute).
func noPodRunning(ctx context.Context, d *benchkit.Daemon) (bool, error) {
	sbs, err := d.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
	if err != nil {
		return false, d.Explain(err)
	}
	if len(sbs) > 0 {
		return false, nil
	}
	cs, err := d.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		return false, d.Explain(err)
	}
	return len(cs) == 0, nil
}

func bridgeOf(name string) string {
	if name == "cradle" {
		return "cradlebd0"
	}
	return "ctrdbd0"
}

func subnetOf(name string) string {
	if name == "cradle" {
		return "10.243.0.0/22"
	}
	return "10.244.0.0/22"
}

// measureSteady samples the CPU of the runtime's processes and of kubelet
// over the window, then their memory.
func measureSteady(ctx context.Context, d *benchkit.Daemon, k *kubelet, r *result) error {
	before, err := runtimeTicks(d)
	if err != nil {
		return err
	}
	kBefore, err := benchkit.CPUTicks(k.pid())
	if err != nil {
		return err
	}
	if err := sleepCtx(ctx, r.steady); err != nil {
		return err
	}
	after, err := runtimeTicks(d)
	if err != nil {
		return err
	}
	kAfter, err := benchkit.CPUTicks(k.pid())
	if err != nil {
		return err
	}
	var ticks int64
	for pid, t := range after {
		ticks += t - before[pid] // a process born in the window counts whole
	}
	r.runtimeCPU = time.Duration(ticks) * benchkit.ClockTick
	r.kubeletCPU = time.Duration(kAfter-kBefore) * benchkit.ClockTick

	ps, err := benchkit.ReadProcs()
	if err != nil {
		return err
	}
	pids, monitors, pauses := benchkit.RuntimeProcs(ps, d.Pid(), d.IsMonitor)
	r.monitors, r.pauses = monitors, pauses
	for _, pid := range pids {
		m, err := benchkit.ReadRollup(pid)
		if err != nil {
			continue // exited between the listing and now
		}
		r.rssKiB += m.RssKiB
		r.pssKiB += m.PssKiB
	}
	return nil
}

// runtimeTicks is the CPU of each of the runtime's processes now.
func runtimeTicks(d *benchkit.Daemon) (map[int]int64, error) {
	ps, err := benchkit.ReadProcs()
	if err != nil {
		return nil, err
	}
	pids, _, _ := benchkit.RuntimeProcs(ps, d.Pid(), d.IsMonitor)
	out := map[int]int64{}
	for _, pid := range pids {
		t, err := benchkit.CPUTicks(pid)
		if err != nil {
			if pid == d.Pid() {
				return nil, d.Explain(err)
			}
			continue
		}
		out[pid] = t
	}
	return out, nil
}

// poll calls cond every 100 ms until it holds, fails, or limit passes.
func poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
