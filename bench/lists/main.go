// Command lists compares how fast cradle and containerd answer kubelet's
// list calls — ListPodSandbox, ListContainers, ListContainerStats,
// ListPodSandboxStats and their Stream* twins — at several node sizes, in
// one run: both daemons are started privately, grown to the same pods and
// containers, and called alternately through kubelet's CRI client, with the
// filters kubelet uses and without. It prints, per call and size, the
// client-visible p50/p99 of both, their ratio against the targets, and
// cradle's server-side time read from its debug endpoint. Run as root from
// the checkout:
//
//	go run ./bench/lists [-sizes 20,110,500] [-max-pods 110] [-calls 200]
//	                     [-profile DIR] [-keep] [-cradle PATH] [-containerd PATH] [-runc PATH]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"golang.org/x/sys/unix"
)

type options struct {
	benchkit.PodFlags
	sizes        []int
	maxPods      int
	calls, block int
	budget       time.Duration
	parallel     int
	profile      string
	profileFor   time.Duration
	target       float64 // ceiling on cradle/containerd above smallSize
	targetSmall  float64 // ceiling at smallSize and below
	smallSize    int
}

// criTimeout bounds every CRI call, kubelet's default runtime-request
// timeout.
const criTimeout = 2 * time.Minute

func main() {
	var o options
	sizes := flag.String("sizes", "20,110,500", "node sizes to measure at, in containers, increasing")
	flag.IntVar(&o.maxPods, "max-pods", 110, "pods at most (kubelet's max-pods); containers beyond are created but not started, spread over the pods")
	flag.IntVar(&o.calls, "calls", 200, "timed calls per runtime for each call and filter at each size")
	flag.DurationVar(&o.budget, "budget", 15*time.Second, "a cell ends early (at 40 calls or more) once either runtime has spent this long in it")
	flag.IntVar(&o.block, "block", 10, "calls in a row on one runtime before the other takes over")
	flag.IntVar(&o.parallel, "parallel", 4, "pods and containers made at once while growing")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of cradle at each size into this dir (cradle-<size>.pprof)")
	flag.DurationVar(&o.profileFor, "profile-for", 20*time.Second, "length of each profile, from the start of the size's calls")
	flag.Float64Var(&o.target, "target", 0.5, "ceiling on cradle/containerd p50 and p99 above -small")
	flag.Float64Var(&o.targetSmall, "target-small", 1.0, "ceiling on cradle/containerd p50 and p99 at -small containers and below")
	flag.IntVar(&o.smallSize, "small", 20, "sizes up to this are held to -target-small")
	o.Register()
	flag.Parse()
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "-sizes: %q is no positive count\n", f)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	benchkit.Main("bench/lists", func(ctx context.Context) error { return run(ctx, o) })
}

func (o options) check() error {
	for i := range o.sizes {
		if i > 0 && o.sizes[i] <= o.sizes[i-1] {
			return fmt.Errorf("-sizes must be increasing")
		}
	}
	switch {
	case o.maxPods < 1 || o.calls < 1 || o.block < 1 || o.parallel < 1:
		return fmt.Errorf("-max-pods, -calls, -block and -parallel must be at least 1")
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
	work, err := os.MkdirTemp(o.Workdir, "cradle-bench-lists-")
	if err != nil {
		return err
	}
	crdlNet := benchkit.NewNetwork(filepath.Join(work, "cradle", "cni"), "bench-lists-cradle", "cradlebl0", "10.243.0.0/22")
	ctrdNet := benchkit.NewNetwork(filepath.Join(work, "containerd", "cni"), "bench-lists-containerd", "ctrdbl0", "10.244.0.0/22")
	var started []*side
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		for _, s := range started {
			s.close()
			s.d.Shutdown(cctx)
			if err := removeCgroupTop(cgroupTop(s.name)); err != nil {
				fmt.Fprintf(os.Stderr, "clean-up of %s's cgroups: %v\n", s.name, err)
			}
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

	ctrdD, err := benchkit.ContainerdPods{
		Comment: "written by cradle's bench/lists: a private containerd for the list benchmark",
		Bin:     o.Containerd, Runc: o.Runc, SandboxImage: fx.Images.Pause, CertsDir: fx.CertsDir,
		Dir: filepath.Join(work, "containerd"), Net: ctrdNet,
	}.Start(ctx, criTimeout)
	if err != nil {
		return err
	}
	ctrd, err := newSide(ctx, "containerd", ctrdD, fx.Images.Workload, filepath.Join(work, "containerd", "pods"), "")
	if err != nil {
		ctrdD.Shutdown(ctx)
		return err
	}
	started = append(started, ctrd)
	debugSock := filepath.Join(work, "cradle", "debug.sock")
	crdlD, err := benchkit.CradlePods{
		Comment: "written by cradle's bench/lists",
		Bin:     fx.CradleBin, CertsDir: fx.CertsDir,
		Dir: filepath.Join(work, "cradle"), Net: crdlNet,
		Env: []string{"CRADLE_DEBUG_ADDR=unix:" + debugSock},
	}.Start(ctx, criTimeout)
	if err != nil {
		return err
	}
	crdl, err := newSide(ctx, "cradle", crdlD, fx.Images.Workload, filepath.Join(work, "cradle", "pods"), debugSock)
	if err != nil {
		crdlD.Shutdown(ctx)
		return err
	}
	started = append(started, crdl)
	for _, s := range []*side{crdl, ctrd} {
		if err := benchkit.PullPodImages(ctx, s.d, fx.Images, s == ctrd); err != nil {
			return err
		}
	}

	printHeader(o, fx.CradleBin)
	var results []cell
	for _, size := range o.sizes {
		pods := min(size, o.maxPods)
		for _, s := range []*side{crdl, ctrd} {
			fmt.Fprintf(os.Stderr, "%s: growing to %d pods, %d containers ...\n", s.name, pods, size)
			if err := s.grow(ctx, pods, size, o.parallel); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "size %d: %d calls x %d variants per runtime ...\n", size, o.calls, len(variants))
		stopProfile := func() error { return nil }
		if o.profile != "" {
			stopProfile = crdl.startProfile(ctx, o.profileFor, filepath.Join(o.profile, fmt.Sprintf("cradle-%d.pprof", size)))
		}
		cells, err := measureSize(ctx, size, o.calls, o.block, o.budget, crdl, ctrd)
		if perr := stopProfile(); perr != nil {
			fmt.Fprintf(os.Stderr, "profile: %v\n", perr)
		}
		if err != nil {
			return err
		}
		results = append(results, cells...)
		// Each size's rows as soon as they are measured: a long run
		// interrupted still leaves them.
		printReport(os.Stderr, cells, o)
	}
	printReport(os.Stdout, results, o)
	fmt.Printf("load average at the end %s (other work on the machine widens the spread; the ratios are of the same run)\n", benchkit.LoadAverage())
	return nil
}

func printHeader(o options, cradleBin string) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("list benchmark: cradle vs containerd, same machine, same run, alternating blocks of %d calls\n", o.block)
	fmt.Printf("machine    %d CPUs, Linux %s, load average %s\n", runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), benchkit.LoadAverage())
	fmt.Printf("containerd %s (%s)\n", benchkit.ContainerdVersion(o.Containerd), o.Containerd)
	fmt.Printf("cradle     %s\n", cradleBin)
	fmt.Printf("node       sizes %v containers: one running container per pod up to %d pods, the rest created, not started;\n", o.sizes, o.maxPods)
	fmt.Printf("           each pod with a cgroup_parent of its own (/bench-lists-<pid>-<runtime>/<pod>), as kubelet's pod<uid>\n")
	fmt.Printf("method     k8s.io/cri-client as kubelet uses it (Stream* through its streaming mode: containerd 1.6 answers\n")
	fmt.Printf("           Unimplemented and the client falls back to List*, as kubelet does); %d timed calls per runtime and\n", o.calls)
	fmt.Printf("           variant after one untimed (fewer, at least %d, once a runtime has spent %v in the variant);\n", minCalls, o.budget)
	fmt.Printf("           server = cradle's own time per call (debug endpoint, gRPC stats handler)\n")
	fmt.Printf("targets    cradle/containerd p50 and p99 <= %.2f above %d containers, <= %.2f at %d and below\n\n", o.target, o.smallSize, o.targetSmall, o.smallSize)
}
