// Command pods compares cradle's pod lifecycle with containerd's on this
// machine, in one run: both daemons are started privately with their own
// pod networks, and driven alternately through kubelet's CRI client. It
// measures pod start latency (RunPodSandbox + CreateContainer +
// StartContainer, image present) one at a time and 4 at once, the memory a
// running pod costs the runtime (PSS of daemon, monitors and pause
// processes over the idle daemon), ListContainers latency with 20 pods
// running, and teardown latency, and prints the ratios against the targets.
// Run as root from the checkout:
//
//	go run ./bench/pods [-n 30] [-parallel 4] [-pods 20] [-list 500] [-keep]
//	                    [-cradle PATH] [-containerd PATH] [-runc PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"golang.org/x/sys/unix"
)

type options struct {
	benchkit.PodFlags
	n, width, pods, calls int
	settle                time.Duration
	targets               targets
}

// criTimeout bounds every CRI call, kubelet's default runtime-request
// timeout.
const criTimeout = 2 * time.Minute

func main() {
	var o options
	flag.IntVar(&o.n, "n", 30, "pods started per runtime, one at a time (and again in parallel batches)")
	flag.IntVar(&o.width, "parallel", 4, "pods started at once in the parallel phase")
	flag.IntVar(&o.pods, "pods", 20, "pods kept running per runtime for the memory and ListContainers phase")
	flag.IntVar(&o.calls, "list", 500, "ListContainers calls per runtime (and as many Version calls, the round-trip floor)")
	flag.DurationVar(&o.settle, "settle", time.Second, "pause between the three memory samples")
	o.Register()
	flag.Float64Var(&o.targets.start, "target-start", 0.4, "ceiling on cradle/containerd pod start p50")
	flag.Float64Var(&o.targets.teardown, "target-teardown", 0.4, "ceiling on cradle/containerd teardown p50")
	flag.Float64Var(&o.targets.idleMiB, "target-idle", 20, "ceiling on cradle's idle daemon PSS on an empty root, MiB")
	flag.Float64Var(&o.targets.memory, "target-memory", 0.5, "ceiling on cradle/containerd memory per pod")
	flag.Float64Var(&o.targets.list, "target-list", 0.2, "ceiling on cradle/containerd ListContainers p99")
	benchkit.Main("bench/pods", func(ctx context.Context) error { return run(ctx, o) })
}

func (o options) check() error {
	switch {
	case o.n < 1 || o.width < 1 || o.pods < 1 || o.calls < 1:
		return fmt.Errorf("-n, -parallel, -pods and -list must be at least 1")
	case o.settle < 0:
		return fmt.Errorf("-settle must not be negative")
	case os.Geteuid() != 0:
		return fmt.Errorf("must run as root: both runtimes create namespaces, mounts and bridges")
	}
	if err := benchkit.CheckExecutables("-containerd", o.Containerd, "-runc", o.Runc, "-cradle", o.Cradle); err != nil {
		return err
	}
	return benchkit.CheckCNIPlugins()
}

func run(ctx context.Context, o options) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.Workdir, "cradle-bench-pods-")
	if err != nil {
		return err
	}
	crdlNet := benchkit.NewNetwork(filepath.Join(work, "cradle", "cni"), "bench-pods-cradle", "cradlebp0", "10.241.0.0/22")
	ctrdNet := benchkit.NewNetwork(filepath.Join(work, "containerd", "cni"), "bench-pods-containerd", "ctrdbp0", "10.242.0.0/22")
	var started []*side
	// Clean-up in reverse: pods, daemons, leftover monitors, bridges, dir.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for _, s := range started {
			s.d.Shutdown(cctx)
		}
		crdlNet.RemoveBridge()
		ctrdNet.RemoveBridge()
		err = errors.Join(err, benchkit.FinishWorkDir(work, o.Keep))
	}()

	fx, err := benchkit.NewPodFixture(ctx, work, o.Cradle, true)
	if err != nil {
		return err
	}
	defer fx.Close()
	cradleBin, imgs, certsDir := fx.CradleBin, fx.Images, fx.CertsDir

	ctrdD, err := benchkit.ContainerdPods{
		Comment: "written by cradle's bench/pods: a private containerd for the pod benchmark",
		Bin:     o.Containerd, Runc: o.Runc, SandboxImage: imgs.Pause, CertsDir: certsDir,
		Dir: filepath.Join(work, "containerd"), Net: ctrdNet,
	}.Start(ctx, criTimeout)
	if err != nil {
		return err
	}
	ctrd := &side{name: "containerd", d: ctrdD, runner: &podRunner{d: ctrdD, image: imgs.Workload, logDir: filepath.Join(work, "containerd", "pods")}}
	started = append(started, ctrd)
	crdlD, err := benchkit.CradlePods{
		Comment: "written by cradle's bench/pods",
		Bin:     cradleBin, CertsDir: certsDir,
		Dir: filepath.Join(work, "cradle"), Net: crdlNet,
	}.Start(ctx, criTimeout)
	if err != nil {
		return err
	}
	crdl := &side{name: "cradle", d: crdlD, runner: &podRunner{d: crdlD, image: imgs.Workload, logDir: filepath.Join(work, "cradle", "pods")}}
	started = append(started, crdl)

	// The daemons' own memory before any work, on an empty root (issue
	// 10's idle figure): nothing pulled, no pod, no monitor.
	for _, s := range []*side{crdl, ctrd} {
		ov, err := settledOverhead(ctx, s.d, o.settle)
		if err != nil {
			return err
		}
		s.empty = ov
	}

	// Images present before anything is timed: the workload on both, the
	// sandbox image on containerd (kubelet's pods find it pulled too).
	for _, s := range []*side{crdl, ctrd} {
		if err := benchkit.PullPodImages(ctx, s.d, imgs, s == ctrd); err != nil {
			return err
		}
	}

	printHeader(o, cradleBin, imgs)
	fmt.Fprintln(os.Stderr, "warm-up ...")
	if err := warmUp(ctx, crdl, ctrd); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sequential starts x %d ...\n", o.n)
	if err := sequential(ctx, o.n, crdl, ctrd); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "parallel starts, %d at once, x %d ...\n", o.width, o.n)
	if err := parallel(ctx, o.n, o.width, crdl, ctrd); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "idle memory ...")
	if err := loaded(ctx, o.pods, o.calls, o.settle, crdl, ctrd); err != nil {
		return err
	}
	printReport(os.Stdout, crdl, ctrd, o.targets, o.width)
	fmt.Printf("load average at the end %s (other work on the machine widens the spread)\n", benchkit.LoadAverage())
	return nil
}

func printHeader(o options, cradleBin string, imgs benchkit.PodImages) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("pod benchmark: cradle vs containerd, same machine, same run, alternating\n")
	fmt.Printf("machine    %d CPUs, Linux %s, load average %s\n", runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), benchkit.LoadAverage())
	fmt.Printf("containerd %s (%s), runc v2 shim, sandbox image %s (catatonit -P as /pause)\n", benchkit.ContainerdVersion(o.Containerd), o.Containerd, imgs.Pause)
	fmt.Printf("cradle     %s (conmon + runc, no pause process)\n", cradleBin)
	fmt.Printf("pods       1 container (%s: %q), pid namespace per container, CNI bridge+portmap+loopback\n", imgs.Workload, benchkit.WorkloadCommand)
	fmt.Printf("method     daemon PSS on an empty root right after start (median of 3 samples %v apart);\n", o.settle)
	fmt.Printf("           1 warm-up pod each; %d sequential starts (each torn down at once); %d starts %d at a time;\n", o.n, o.n, o.width)
	fmt.Printf("           then %d pods each: PSS (median of 3 samples %v apart) over the idle PSS, %d ListContainers + %[3]d Version calls each;\n", o.pods, o.settle, o.calls)
	fmt.Printf("           teardown = StopContainer(grace %ds) + StopPodSandbox + RemovePodSandbox, from both the sequential and the %d-pod phase\n\n", benchkit.StopGrace, o.pods)
}
