// Command density runs a full node of static pods under a real kubelet, first
// on cradle, then on containerd (Debian's package), in one run, and compares
// what the node costs: the time until N pods are Running, the runtime's CPU
// (daemon, monitors, pause processes and the runc/CNI processes they reap)
// and kubelet's own CPU over a steady-state window, the runtime's RSS and
// PSS, and the time from the manifests' removal until no pod is left.
// Run as root from the checkout:
//
//	go run ./bench/density [-pods 110] [-steady 60s] [-rounds 1] [-kubelet PATH]
//	                       [-only cradle|containerd] [-keep] [-cradle PATH] [-containerd PATH]
//
// Without -kubelet (or $KUBELET), hack/build-k8s.sh builds kubelet v1.36.3
// from the Go module proxy into /var/tmp/cradle-k8s-bin (once).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

type options struct {
	benchkit.PodFlags
	pods, rounds int
	steady       time.Duration
	kubelet      string
	only         string
	targets      targets
}

// targets are ceilings on cradle/containerd.
type targets struct {
	cpu, drain, fill, pss float64
}

const criTimeout = 2 * time.Minute

func main() {
	var o options
	flag.IntVar(&o.pods, "pods", 110, "static pods (one sleeping container each); kubelet's default max-pods is 110")
	flag.IntVar(&o.rounds, "rounds", 1, "rounds; each runs cradle, then containerd (containerd first in even rounds)")
	flag.DurationVar(&o.steady, "steady", 60*time.Second, "steady-state window over which CPU is measured")
	flag.StringVar(&o.kubelet, "kubelet", os.Getenv("KUBELET"), "kubelet binary (default: $KUBELET, else built by hack/build-k8s.sh)")
	flag.StringVar(&o.only, "only", "", "run one side only: cradle or containerd (no ratios)")
	o.Register()
	flag.Float64Var(&o.targets.cpu, "target-cpu", 0.4, "ceiling on cradle/containerd steady-state runtime CPU")
	flag.Float64Var(&o.targets.drain, "target-drain", 0.6, "ceiling on cradle/containerd drain time")
	flag.Float64Var(&o.targets.fill, "target-fill", 0.3, "ceiling on cradle/containerd fill time")
	flag.Float64Var(&o.targets.pss, "target-pss", 0.2, "ceiling on cradle/containerd runtime PSS")
	benchkit.Main("bench/density", func(ctx context.Context) error { return run(ctx, o) })
}

func (o *options) check() error {
	switch {
	case o.pods < 1 || o.rounds < 1:
		return fmt.Errorf("-pods and -rounds must be at least 1")
	case o.steady <= 0:
		return fmt.Errorf("-steady must be positive")
	case o.only != "" && o.only != "cradle" && o.only != "containerd":
		return fmt.Errorf("-only takes cradle or containerd")
	case os.Geteuid() != 0:
		return fmt.Errorf("must run as root: kubelet and both runtimes manage cgroups, mounts and bridges")
	}
	if err := benchkit.CheckExecutables("-containerd", o.Containerd, "-runc", o.Runc, "-cradle", o.Cradle, "-kubelet", o.kubelet); err != nil {
		return err
	}
	return benchkit.CheckCNIPlugins()
}

// buildKubelet runs hack/build-k8s.sh when no kubelet was named.
func buildKubelet(ctx context.Context) (string, error) {
	out := "/var/tmp/cradle-k8s-bin"
	script, err := filepath.Abs("hack/build-k8s.sh")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("run from the checkout, or pass -kubelet: %w", err)
	}
	cmd := exec.CommandContext(ctx, script, out, "kubelet")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building kubelet: %w", err)
	}
	return filepath.Join(out, "kubelet"), nil
}

func run(ctx context.Context, o options) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	if o.kubelet == "" {
		if o.kubelet, err = buildKubelet(ctx); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp(o.Workdir, "cradle-density-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, benchkit.FinishWorkDir(work, o.Keep)) }()

	fx, err := benchkit.NewPodFixture(ctx, work, o.Cradle, o.only != "containerd")
	if err != nil {
		return err
	}
	defer fx.Close()

	printHeader(o, fx)
	var results []result
	for round := 1; round <= o.rounds; round++ {
		order := []string{"cradle", "containerd"}
		if round%2 == 0 {
			order = []string{"containerd", "cradle"}
		}
		for _, name := range order {
			if o.only != "" && o.only != name {
				continue
			}
			fmt.Fprintf(os.Stderr, "round %d: %s ...\n", round, name)
			r, err := runSide(ctx, o, fx, work, name, round)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round, name, err)
			}
			printResult(os.Stdout, r)
			results = append(results, r)
		}
	}
	printReport(os.Stdout, results, o.targets)
	fmt.Printf("load average at the end %s (other work on the machine widens the spread)\n", benchkit.LoadAverage())
	return nil
}
