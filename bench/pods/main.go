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
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"github.com/cradle-runtime/cradle/internal/testkit"
	"golang.org/x/sys/unix"
)

type options struct {
	n, width, pods, calls int
	settle                time.Duration
	keep                  bool
	cradle, containerd    string
	runc, workdir         string
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
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (configs, logs)")
	flag.StringVar(&o.cradle, "cradle", "", "cradle binary (default: build ./cmd/cradle of this checkout)")
	flag.StringVar(&o.containerd, "containerd", "/usr/bin/containerd", "containerd binary (1.6, Debian's package)")
	flag.StringVar(&o.runc, "runc", "/usr/sbin/runc", "runc binary named in containerd's config")
	flag.StringVar(&o.workdir, "workdir", "/var/tmp", "parent of the work dir")
	flag.Float64Var(&o.targets.start, "target-start", 0.5, "ceiling on cradle/containerd pod start p50")
	flag.Float64Var(&o.targets.memory, "target-memory", 0.5, "ceiling on cradle/containerd memory per pod")
	flag.Float64Var(&o.targets.list, "target-list", 0.2, "ceiling on cradle/containerd ListContainers p99")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pods:", err)
		os.Exit(1)
	}
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
	for _, b := range []struct{ flag, path string }{{"containerd", o.containerd}, {"runc", o.runc}, {"cradle", o.cradle}} {
		if b.path == "" {
			continue
		}
		if fi, err := os.Stat(b.path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("-%s %s is not an executable file", b.flag, b.path)
		}
	}
	return benchkit.CheckCNIPlugins()
}

func run(ctx context.Context, o options) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.workdir, "cradle-bench-pods-")
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
			if cerr := s.runner.removeAll(cctx); cerr != nil {
				fmt.Fprintf(os.Stderr, "clean-up of %s pods: %v\n", s.name, cerr)
			}
			s.d.Stop()
			benchkit.KillMonitors(s.d)
		}
		crdlNet.RemoveBridge()
		ctrdNet.RemoveBridge()
		if o.keep {
			fmt.Printf("\nkept %s (configs, logs)\n", work)
			return
		}
		if cerr := benchkit.RemoveWorkDir(work); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	cradleBin := o.cradle
	if cradleBin == "" {
		fmt.Fprintln(os.Stderr, "building cmd/cradle ...")
		if cradleBin, err = benchkit.BuildCradle(ctx, filepath.Join(work, "bin")); err != nil {
			return err
		}
	}
	reg, err := testkit.StartRegistry()
	if err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	defer reg.Close()
	imgs, err := benchkit.PushPodImages(reg)
	if err != nil {
		return err
	}
	certsDir := filepath.Join(work, "certs.d")
	if err := benchkit.WriteHostsDir(certsDir, reg.Host); err != nil {
		return err
	}

	ctrdD, err := benchkit.ContainerdPods{
		Comment: "written by cradle's bench/pods: a private containerd for the pod benchmark",
		Bin:     o.containerd, Runc: o.runc, SandboxImage: imgs.Pause, CertsDir: certsDir,
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
	fmt.Printf("containerd %s (%s), runc v2 shim, sandbox image %s (catatonit -P as /pause)\n", benchkit.ContainerdVersion(o.containerd), o.containerd, imgs.Pause)
	fmt.Printf("cradle     %s (conmon + runc, no pause process)\n", cradleBin)
	fmt.Printf("pods       1 container (%s: %q), pid namespace per container, CNI bridge+portmap+loopback\n", imgs.Workload, benchkit.WorkloadCommand)
	fmt.Printf("method     1 warm-up pod each; %d sequential starts (each torn down at once); %d starts %d at a time;\n", o.n, o.n, o.width)
	fmt.Printf("           then %d pods each: PSS (median of 3 samples %v apart) over the idle PSS, %d ListContainers + %[3]d Version calls each;\n", o.pods, o.settle, o.calls)
	fmt.Printf("           teardown = StopContainer(grace %ds) + StopPodSandbox + RemovePodSandbox, from both the sequential and the %d-pod phase\n\n", benchkit.StopGrace, o.pods)
}
