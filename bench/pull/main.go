// Command pull compares cradle's image pull throughput with containerd's on
// this machine, in one run: both daemons are started privately, both pull
// the same image from the same registry on 127.0.0.1 through kubelet's CRI
// client, in alternating order, each pull from an empty store. It prints
// per-round times, medians, throughput, CPU, peak RSS and the throughput
// ratio against the target. Run as root from the checkout:
//
//	go run ./bench/pull [-rounds 5] [-size 180MiB] [-layers 5] [-keep]
//	                    [-cradle PATH] [-containerd PATH] [-only cradle|containerd]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"golang.org/x/sys/unix"
)

type options struct {
	rounds         int
	size           int64
	layers         int
	randomFraction float64
	keep           bool
	cradle         string
	containerd     string
	runc           string
	workdir        string
	only           string
	target         float64
}

func main() {
	var o options
	size := "180MiB"
	flag.IntVar(&o.rounds, "rounds", 5, "timed rounds (after one warm-up pull per runtime)")
	flag.StringVar(&size, "size", size, "uncompressed file content of the image (compresses to about 56% with the default mix)")
	flag.IntVar(&o.layers, "layers", 5, "layers of the image")
	flag.Float64Var(&o.randomFraction, "random", 0.25, "share of the content that is incompressible random bytes; the rest is text")
	flag.BoolVar(&o.keep, "keep", false, "keep the work dir (configs, logs, stores) and the pulled images")
	flag.StringVar(&o.cradle, "cradle", "", "cradle binary (default: build ./cmd/cradle of this checkout)")
	flag.StringVar(&o.containerd, "containerd", "/usr/bin/containerd", "containerd binary (1.6, Debian's package)")
	flag.StringVar(&o.runc, "runc", "/usr/sbin/runc", "runc binary named in containerd's config")
	flag.StringVar(&o.workdir, "workdir", "/var/tmp", "parent of the work dir; both runtimes store images there")
	flag.StringVar(&o.only, "only", "", "measure one runtime only: cradle or containerd (no ratio)")
	flag.Float64Var(&o.target, "target", 1.5, "cradle/containerd throughput ratio to reach")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", flag.Args())
		os.Exit(2)
	}
	var err error
	if o.size, err = parseSize(size); err != nil {
		fmt.Fprintln(os.Stderr, "-size:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pull:", err)
		os.Exit(1)
	}
}

func (o options) wants(name string) bool { return o.only == "" || o.only == name }

func (o options) check() error {
	switch {
	case o.rounds < 1:
		return fmt.Errorf("-rounds must be at least 1")
	case o.layers < 1:
		return fmt.Errorf("-layers must be at least 1")
	case o.randomFraction < 0 || o.randomFraction > 1:
		return fmt.Errorf("-random must be between 0 and 1")
	case o.size < int64(o.layers)*minFileSize:
		return fmt.Errorf("-size %d is too small for %d layers", o.size, o.layers)
	case o.only != "" && o.only != "cradle" && o.only != "containerd":
		return fmt.Errorf("-only must be cradle or containerd")
	case os.Geteuid() != 0:
		return fmt.Errorf("must run as root: both runtimes mount overlayfs and own their stores")
	}
	if o.wants("containerd") {
		for _, b := range []struct{ name, path string }{{"containerd", o.containerd}, {"runc", o.runc}} {
			if err := benchkit.Executable(b.path); err != nil {
				return fmt.Errorf("%s: %w (apt-get install containerd runc, or pass -%s PATH)", b.name, err, b.name)
			}
		}
	}
	if o.cradle != "" {
		if err := benchkit.Executable(o.cradle); err != nil {
			return fmt.Errorf("-cradle: %w", err)
		}
	}
	return nil
}

func run(ctx context.Context, o options) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	work, err := os.MkdirTemp(o.workdir, "cradle-bench-pull-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Printf("\nkept %s (configs, logs, stores)\n", work)
			return
		}
		if cerr := benchkit.RemoveWorkDir(work); cerr != nil && err == nil {
			err = cerr
		}
	}()

	// Build first: a checkout that does not compile fails in seconds.
	cradleBin := o.cradle
	if o.wants("cradle") && cradleBin == "" {
		fmt.Fprintln(os.Stderr, "building cmd/cradle ...")
		if cradleBin, err = benchkit.BuildCradle(ctx, filepath.Join(work, "bin")); err != nil {
			return err
		}
	}

	spec := imageSpec{Layers: o.layers, Size: o.size, RandomFraction: o.randomFraction, Seed: 1}
	t0 := time.Now()
	img, err := buildImage(spec)
	if err != nil {
		return fmt.Errorf("build image: %w", err)
	}
	buildTime := time.Since(t0)

	reg, err := startRegistry(img)
	if err != nil {
		return err
	}
	defer reg.Close()
	ceiling, err := registryCeiling(ctx, reg, img)
	if err != nil {
		return fmt.Errorf("registry ceiling: %w", err)
	}

	certsDir, cniDir := filepath.Join(work, "certs.d"), filepath.Join(work, "cni")
	if err := benchkit.WriteHostsDir(certsDir, reg.Host); err != nil {
		return err
	}
	if err := os.MkdirAll(cniDir, 0o755); err != nil {
		return err
	}

	var ctrd, crdl *daemon
	if o.wants("containerd") {
		ctrd, err = newContainerdSetup(work, o.containerd, o.runc, certsDir, cniDir).start(ctx)
		if err != nil {
			return err
		}
		defer ctrd.Stop()
	}
	if o.wants("cradle") {
		crdl, err = newCradleSetup(work, cradleBin, certsDir, cniDir).start(ctx)
		if err != nil {
			return err
		}
		defer crdl.Stop()
	}

	ref := reg.Ref(imageRepo + ":" + imageTag)
	printHeader(o, img, ref, buildTime, ceiling, cradleBin)

	res, err := measure(ctx, o, crdl, ctrd, ref)
	if err != nil {
		return err
	}
	res.hwmCradle, res.hwmContainerd = hwm(crdl), hwm(ctrd)
	printReport(os.Stdout, o, img.Transfer, res)
	fmt.Printf("load average at the end %s (other work on the machine widens the spread between rounds)\n", benchkit.LoadAverage())
	return nil
}

// measure runs the warm-up and the timed rounds.
func measure(ctx context.Context, o options, crdl, ctrd *daemon, ref string) (res results, err error) {
	// Warm-up: first use of each daemon's code paths, connections and dirs.
	fmt.Fprintln(os.Stderr, "warm-up pulls ...")
	if res.warmCradle, res.warmContainerd, err = pullPair(ctx, crdl, ctrd, ref, true); err != nil {
		return res, err
	}
	for r := 1; r <= o.rounds; r++ {
		c, d, err := pullPair(ctx, crdl, ctrd, ref, cradleFirst(r))
		if err != nil {
			return res, err
		}
		res.cradle = append(res.cradle, c)
		res.containerd = append(res.containerd, d)
		fmt.Fprintf(os.Stderr, "round %d/%d: cradle %s, containerd %s\n", r, o.rounds, formatSeconds(c.Time), formatSeconds(d.Time))
	}
	if !o.keep {
		// Leave nothing behind, and check that the last pulls clean up too.
		for _, d := range []*daemon{crdl, ctrd} {
			if d != nil {
				if err := removeAndWait(ctx, d, ref); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// pullPair times one pull on each runtime that runs (nil ones are skipped),
// in the order given.
func pullPair(ctx context.Context, crdl, ctrd *daemon, ref string, cradleFirst bool) (c, d pullResult, err error) {
	order := []*daemon{ctrd, crdl}
	if cradleFirst {
		order = []*daemon{crdl, ctrd}
	}
	for _, dm := range order {
		if dm == nil {
			continue
		}
		r, err := timedPull(ctx, dm, ref)
		if err != nil {
			err = dm.Explain(err)
			if dm == crdl {
				err = fmt.Errorf("%w\n(-only containerd measures containerd alone)", err)
			}
			return c, d, err
		}
		if dm == crdl {
			c = r
		} else {
			d = r
		}
	}
	return c, d, nil
}

// hwm is the daemon's lifetime peak RSS (VmHWM), 0 without a daemon.
func hwm(d *daemon) int64 {
	if d == nil {
		return 0
	}
	return statusKB(d.Pid(), "VmHWM:") * 1024
}

func printHeader(o options, img *builtImage, ref string, buildTime time.Duration, ceiling float64, cradleBin string) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	fmt.Printf("pull benchmark: cradle vs containerd, same machine, same run\n")
	fmt.Printf("machine   %d CPUs, Linux %s, work dir on %s, load average %s\n",
		runtime.NumCPU(), unix.ByteSliceToString(uts.Release[:]), o.workdir, benchkit.LoadAverage())
	if o.wants("containerd") {
		pigz := "absent: containerd decompresses in Go"
		if p, err := exec.LookPath("unpigz"); err == nil {
			pigz = "present (" + p + "): containerd decompresses with it"
		}
		fmt.Printf("containerd %s (%s), CRI defaults: 3 parallel layer downloads, overlayfs; unpigz %s\n",
			benchkit.ContainerdVersion(o.containerd), o.containerd, pigz)
	}
	if o.wants("cradle") {
		fmt.Printf("cradle    %s, defaults (6 parallel layer downloads)\n", cradleBin)
	}
	fmt.Printf("image     %s: %d layers, %d files, built in %s\n", ref, o.layers, img.Files, buildTime.Round(time.Millisecond))
	fmt.Printf("          %s uncompressed file content (%.0f%% random, %.0f%% text), %s gzip-compressed, %s per pull incl. manifest+config\n",
		formatMiB(img.Uncompressed), 100*o.randomFraction, 100*(1-o.randomFraction), formatMiB(img.Compressed), formatMiB(img.Transfer))
	fmt.Printf("registry  in-process (go-containerregistry, blobs in memory), plain HTTP on 127.0.0.1; serves %.0f MiB/s with every layer fetched at once\n", ceiling)
	fmt.Printf("method    1 warm-up pull each, then %d rounds alternating who pulls first; before every pull: CRI RemoveImage, wait until the store dirs are empty, sync\n\n", o.rounds)
}
