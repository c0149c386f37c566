package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

func printHeader(o options, fx *benchkit.PodFixture) {
	fmt.Printf("density benchmark: a node of static pods under a real kubelet, cradle vs containerd, same machine, same run\n")
	fmt.Printf("machine    load average %s\n", benchkit.LoadAverage())
	fmt.Printf("kubelet    %s (standalone, static pods, kubelet defaults: PLEG relist 1s, CRI stats provider)\n", o.kubelet)
	fmt.Printf("containerd %s (%s), runc v2 shim, sandbox image %s\n", benchkit.ContainerdVersion(o.Containerd), o.Containerd, fx.Images.Pause)
	fmt.Printf("cradle     %s (conmon + runc, no pause process)\n", fx.CradleBin)
	fmt.Printf("pods       %d static pods of 1 container (%s: %q), images pulled beforehand\n", o.pods, fx.Images.Workload, benchkit.WorkloadCommand)
	fmt.Printf("method     fill = manifests placed → all Running and ready (kubelet /pods); %v settle; CPU over %v of steady state\n", settle, o.steady)
	fmt.Printf("           (runtime: daemon + monitors + pause processes, with the children they reaped; kubelet alone);\n")
	fmt.Printf("           RSS/PSS of the runtime's processes after the window; drain = manifests removed → no sandbox READY and no container running;\n")
	fmt.Printf("           removed = manifests removed → ListPodSandbox empty (kubelet removes stopped sandboxes in its container GC, once a minute)\n\n")
}

func millicores(cpu, window time.Duration) float64 {
	return float64(cpu) / float64(window) * 1000
}

func printResult(w io.Writer, r result) {
	fmt.Fprintf(w, "round %d %-10s fill %6.2f s  runtime CPU %5.1f mcores  kubelet CPU %5.1f mcores  RSS %6.1f MiB  PSS %6.1f MiB  (%d monitors, %d pauses)  drain %6.2f s  removed %6.2f s\n",
		r.round, r.runtime, r.fill.Seconds(), millicores(r.runtimeCPU, r.steady), millicores(r.kubeletCPU, r.steady),
		float64(r.rssKiB)/1024, float64(r.pssKiB)/1024, r.monitors, r.pauses, r.drain.Seconds(), r.removed.Seconds())
}

// figure is one compared quantity: how to read it from a result, and its
// ceiling on cradle/containerd (0: reported, no target).
type figure struct {
	name   string
	unit   string
	get    func(result) float64
	target float64
}

func printReport(w io.Writer, rs []result, t targets) {
	by := map[string][]result{}
	for _, r := range rs {
		by[r.runtime] = append(by[r.runtime], r)
	}
	figures := []figure{
		{"fill (all Running)", "s", func(r result) float64 { return r.fill.Seconds() }, t.fill},
		{"runtime CPU, steady", "mcores", func(r result) float64 { return millicores(r.runtimeCPU, r.steady) }, t.cpu},
		{"kubelet CPU, steady", "mcores", func(r result) float64 { return millicores(r.kubeletCPU, r.steady) }, 0},
		{"runtime RSS", "MiB", func(r result) float64 { return float64(r.rssKiB) / 1024 }, 0},
		{"runtime PSS", "MiB", func(r result) float64 { return float64(r.pssKiB) / 1024 }, t.pss},
		{"drain (none running)", "s", func(r result) float64 { return r.drain.Seconds() }, t.drain},
		{"removed (kubelet GC)", "s", func(r result) float64 { return r.removed.Seconds() }, 0},
	}
	fmt.Fprintf(w, "\n%-22s %12s %12s %8s\n", "median of rounds", "cradle", "containerd", "ratio")
	for _, f := range figures {
		c, okC := median(by["cradle"], f.get)
		d, okD := median(by["containerd"], f.get)
		line := fmt.Sprintf("%-22s %12s %12s", f.name, show(c, okC, f.unit), show(d, okD, f.unit))
		if okC && okD {
			ratio := benchkit.Ratio(c, d)
			line += fmt.Sprintf(" %8.2f", ratio)
			if f.target > 0 {
				verdict := "PASS"
				if ratio > f.target {
					verdict = "MISS"
				}
				line += fmt.Sprintf("  (target <= %.2f) %s", f.target, verdict)
			}
		}
		fmt.Fprintln(w, line)
	}
}

func show(v float64, ok bool, unit string) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

func median(rs []result, get func(result) float64) (float64, bool) {
	if len(rs) == 0 {
		return 0, false
	}
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = get(r)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}
