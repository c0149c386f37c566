// Command soak runs many pod lifecycles against cradle and containerd on
// this machine, in one run, and looks for what grows: each runtime gets the
// same kubelet-like lifecycle (RunPodSandbox, CreateContainer,
// StartContainer, ExecSync, StopContainer, StopPodSandbox, RemoveContainer,
// RemovePodSandbox) -n times, -concurrency at a time, in segments that
// alternate between the runtimes. It prints lifecycles/s and p50/p99 per
// RPC with cradle/containerd ratios, the daemons' fds, threads, goroutines
// (cradle) and RSS/PSS at 0, n/2 and n lifecycles with LEAK? where they
// grew, and a census of what cradle left on the host after the last pod.
// Run as root from the checkout:
//
//	go run ./bench/soak [-n 1000] [-concurrency 8] [-runtimes cradle,containerd]
//	                    [-cradle PATH] [-containerd PATH] [-runc PATH] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"github.com/cradle-runtime/cradle/internal/testnet"
	"golang.org/x/sys/unix"
)

type options struct {
	benchkit.PodFlags
	n, width, warmup, segments int
	runtimes                   []string
	settle                     time.Duration
	limits                     limits
}

// criTimeout bounds every CRI call, kubelet's default runtime-request
// timeout.
const criTimeout = 2 * time.Minute

func main() {
	var o options
	rts := "cradle,containerd"
	flag.IntVar(&o.n, "n", 1000, "lifecycles per runtime")
	flag.IntVar(&o.width, "concurrency", 8, "lifecycles at a time")
	flag.IntVar(&o.warmup, "warmup", 8, "lifecycles per runtime before the first sample, neither timed nor counted")
	flag.IntVar(&o.segments, "segments", 10, "segments the lifecycles are split into; the runtimes alternate by segment")
	flag.StringVar(&rts, "runtimes", rts, "runtimes to soak, in the order of the first segment: cradle, containerd or both")
	flag.DurationVar(&o.settle, "settle", 500*time.Millisecond, "pause before each of the three samples at a checkpoint")
	o.Register()
	flag.IntVar(&o.limits.fds, "leak-fds", 10, "fd growth from the first to the last sample flagged LEAK?")
	flag.IntVar(&o.limits.threads, "leak-threads", 10, "thread growth flagged LEAK?")
	flag.IntVar(&o.limits.goroutines, "leak-goroutines", 20, "goroutine growth flagged LEAK?")
	flag.Float64Var(&o.limits.memPercent, "leak-mem", 20, "RSS or PSS growth in percent flagged LEAK?")
	benchkit.Main("bench/soak", func(ctx context.Context) error {
		o.runtimes = strings.Split(rts, ",")
		return run(ctx, o)
	})
}

func (o options) wants(name string) bool { return slices.Contains(o.runtimes, name) }

func (o options) check() error {
	switch {
	case o.n < 1 || o.width < 1 || o.segments < 1 || o.warmup < 0:
		return fmt.Errorf("-n, -concurrency and -segments must be at least 1, -warmup at least 0")
	case o.settle < 0:
		return fmt.Errorf("-settle must not be negative")
	case len(o.runtimes) == 0 || len(o.runtimes) > 2 || slices.ContainsFunc(o.runtimes, func(r string) bool { return r != "cradle" && r != "containerd" }) ||
		len(slices.Compact(slices.Clone(o.runtimes))) != len(o.runtimes):
		return fmt.Errorf("-runtimes %s: want cradle, containerd, or both separated by a comma", strings.Join(o.runtimes, ","))
	case os.Geteuid() != 0:
		return fmt.Errorf("must run as root: both runtimes create namespaces, mounts, cgroups and bridges")
	}
	bins := []string{"-cradle", o.Cradle}
	if o.wants("containerd") {
		bins = append(bins, "-containerd", o.Containerd, "-runc", o.Runc)
	}
	if err := benchkit.CheckExecutables(bins...); err != nil {
		return fmt.Errorf("%w (apt-get install containerd runc)", err)
	}
	return benchkit.CheckCNIPlugins()
}

func run(ctx context.Context, o options) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.Workdir, "cradle-bench-soak-")
	if err != nil {
		return err
	}
	var (
		started []*soaker
		nets    []benchkit.Network
		parents []string
	)
	// Clean-up in reverse: pods, daemons, leftover monitors, bridges,
	// the pods' cgroup parents, the dir.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for _, s := range started {
			s.d.Shutdown(cctx)
		}
		for _, n := range nets {
			n.RemoveBridge()
		}
		for _, p := range parents {
			if cerr := removeCgroupParent(p); cerr != nil {
				fmt.Fprintln(os.Stderr, cerr)
			}
		}
		err = errors.Join(err, benchkit.FinishWorkDir(work, o.Keep))
	}()

	fx, err := benchkit.NewPodFixture(ctx, work, o.Cradle, o.wants("cradle"))
	if err != nil {
		return err
	}
	defer fx.Close()
	cradleBin, imgs, certsDir := fx.CradleBin, fx.Images, fx.CertsDir

	var crdlScope *censusScope
	for _, name := range o.runtimes {
		// A leased bridge and subnet: no other test or bench run on this
		// host shares them.
		lease, err := testnet.Lease()
		if err != nil {
			return err
		}
		dir := filepath.Join(work, name)
		net := benchkit.NewNetwork(filepath.Join(dir, "cni"), "bench-soak-"+name, lease.Bridge, lease.V4.String())
		nets = append(nets, net)
		s := &soaker{name: name, image: imgs.Workload, logDir: filepath.Join(dir, "pods"),
			cgroupParent: fmt.Sprintf("/bench-soak-%d-%s", os.Getpid(), name), samples: map[int]sample{}}
		parents = append(parents, s.cgroupParent)
		var count goroutineCounter
		switch name {
		case "containerd":
			s.d, err = benchkit.ContainerdPods{
				Comment: "written by cradle's bench/soak: a private containerd for the soak",
				Bin:     o.Containerd, Runc: o.Runc, SandboxImage: imgs.Pause, CertsDir: certsDir,
				Dir: dir, Net: net,
			}.Start(ctx, criTimeout)
		case "cradle":
			debugSock := filepath.Join(dir, "debug.sock")
			c := benchkit.CradlePods{
				Comment: "written by cradle's bench/soak",
				Bin:     cradleBin, CertsDir: certsDir, Dir: dir, Net: net,
				Env: []string{"CRADLE_DEBUG_ADDR=unix:" + debugSock},
			}
			s.d, err = c.Start(ctx, criTimeout)
			count = pprofGoroutines(debugSock)
			crdlScope = &censusScope{dir: dir, root: c.Root(), state: c.State(), cgroupParent: s.cgroupParent,
				bridge: net.Bridge, ipamDir: filepath.Join(net.IPAMDir, net.Name)}
		}
		if err != nil {
			return err
		}
		started = append(started, s)
		if err := benchkit.PullPodImages(ctx, s.d, imgs, name == "containerd"); err != nil {
			return err
		}
		s.count = count
	}
	if crdlScope != nil {
		mounts, err := readMounts()
		if err != nil {
			return err
		}
		if crdlScope.baseline, err = snapshot(crdlScope.root, crdlScope.state, mounts); err != nil {
			return err
		}
	}

	checkpoints := checkpointsOf(o.n)
	printHeader(o, cradleBin, imgs, started, checkpoints)
	if o.warmup > 0 {
		fmt.Fprintf(os.Stderr, "warm-up: %d lifecycles each ...\n", o.warmup)
		for _, s := range started {
			if err := s.segment(ctx, -o.warmup, 0, o.width); err != nil {
				return err
			}
		}
	}
	for _, s := range started {
		if err := s.sample(ctx, 0, o.settle); err != nil {
			return err
		}
	}
	from := 0
	for k, end := range boundaries(o.n, o.segments, checkpoints) {
		for _, s := range orderOf(k, started) {
			fmt.Fprintf(os.Stderr, "%s: lifecycles %d-%d ...\n", s.name, from, end-1)
			if err := s.segment(ctx, from, end, o.width); err != nil {
				return err
			}
			if slices.Contains(checkpoints, end) {
				if err := s.sample(ctx, end, o.settle); err != nil {
					return err
				}
			}
		}
		from = end
	}
	printResults(os.Stdout, started, checkpoints, o.limits)
	if crdlScope != nil {
		fmt.Println()
		leaks, err := settledCensus(ctx, *crdlScope)
		if err != nil {
			return err
		}
		fmt.Printf("cradle after the last lifecycle (mounts, namespace pins, veths, IPAM leases, processes, cgroups, files under root and state):\n")
		fmt.Print(formatCensus(leaks))
	}
	fmt.Printf("\nload average at the end %s (other work on the machine widens the spread)\n", benchkit.LoadAverage())
	return nil
}

// sample records the daemon's figures at a checkpoint.
func (s *soaker) sample(ctx context.Context, at int, settle time.Duration) error {
	v, err := settledSample(ctx, s.d.Pid(), s.count, settle)
	if err != nil {
		return s.d.Explain(fmt.Errorf("sample %s: %w", s.name, err))
	}
	s.samples[at] = v
	return nil
}

// orderOf is the runtimes in the order of segment k: the first runtime
// leads in even segments, the other in odd ones, so neither always runs on
// a machine the other just warmed or dirtied.
func orderOf(k int, ss []*soaker) []*soaker {
	out := slices.Clone(ss)
	if k%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// settledCensus takes the census until it finds nothing, at most five
// times a second apart: a monitor may take a moment to exit after the RPC
// that stopped its container returned.
func settledCensus(ctx context.Context, c censusScope) ([]leak, error) {
	for i := 0; ; i++ {
		leaks, err := takeCensus(c)
		if err != nil || len(leaks) == 0 || i == 4 {
			return leaks, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// removeCgroupParent removes the pods' cgroup parent from every hierarchy
// (kubelet's job for the cgroups it hands runtimes); what is still below it
// stays, and the census has named it.
func removeCgroupParent(parent string) error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range cgroupHierarchies(mounts) {
		p := filepath.Join(h, parent)
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func printHeader(o options, cradleBin string, imgs benchkit.PodImages, ss []*soaker, checkpoints []int) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("soak benchmark: %s, same machine, same run, alternating segments\n", strings.Join(o.runtimes, " vs "))
	fmt.Printf("machine    %d CPUs, Linux %s, load average %s\n", runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), benchkit.LoadAverage())
	for _, s := range ss {
		switch s.name {
		case "containerd":
			fmt.Printf("containerd %s (%s), runc v2 shim, sandbox image %s (catatonit -P as /pause)\n", benchkit.ContainerdVersion(o.Containerd), o.Containerd, imgs.Pause)
		case "cradle":
			g := "goroutines from its pprof endpoint (CRADLE_DEBUG_ADDR)"
			if s.count == nil || func() bool { _, err := s.count(context.Background()); return err != nil }() {
				g = "no goroutine count (daemon has no CRADLE_DEBUG_ADDR): threads only"
			}
			fmt.Printf("cradle     %s (conmon + runc, no pause process; %s)\n", cradleBin, g)
		}
	}
	fmt.Printf("lifecycle  RunPodSandbox, CreateContainer, StartContainer, ExecSync %q, StopContainer(grace %ds), StopPodSandbox,\n", execCommand, benchkit.StopGrace)
	fmt.Printf("           RemoveContainer, RemovePodSandbox; 1 container (%s: %q), pid namespace per container,\n", imgs.Workload, benchkit.WorkloadCommand)
	fmt.Printf("           CNI bridge+portmap+loopback (a leased bridge and /24 per runtime), cgroup_parent /bench-soak-<pid>-<runtime>\n")
	fmt.Printf("method     %d lifecycles per runtime, %d at a time, in %d segments alternating which runtime goes first;\n", o.n, o.width, len(boundaries(o.n, o.segments, checkpoints)))
	fmt.Printf("           %d warm-up lifecycles each before; daemon sampled with no pod at %s lifecycles\n\n", o.warmup, joinInts(checkpoints))
}
