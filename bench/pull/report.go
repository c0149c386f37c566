package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// results are the measured pulls; a runtime that was not measured has zero
// values.
type results struct {
	warmCradle, warmContainerd pullResult
	cradle, containerd         []pullResult
	hwmCradle, hwmContainerd   int64
}

func times(rs []pullResult) []time.Duration {
	out := make([]time.Duration, len(rs))
	for i, r := range rs {
		out[i] = r.Time
	}
	return out
}

func cpus(rs []pullResult, self bool) []time.Duration {
	out := make([]time.Duration, len(rs))
	for i, r := range rs {
		out[i] = r.CPU
		if self {
			out[i] = r.SelfCPU
		}
	}
	return out
}

func peakRSS(rs []pullResult) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.PeakRSS)
	}
	return m
}

func ratioCell(c, d time.Duration) string {
	if r := throughputRatio(c, d); r > 0 {
		return fmt.Sprintf("%.2f", r)
	}
	return "-"
}

func mibCell(b int64) string {
	if b <= 0 {
		return "-"
	}
	return formatMiB(b)
}

// printReport writes two tables, the rounds and a summary (medians,
// throughput over the median, CPU, memory, disk), then the ratio against the
// target.
func printReport(w io.Writer, o options, bi *benchImage, res results) {
	transfer := bi.img.Transfer
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "round\tfirst\tcradle\tcontainerd\tratio")
	fmt.Fprintf(tw, "warm-up\tcradle\t%s\t%s\t%s\n", formatSeconds(res.warmCradle.Time), formatSeconds(res.warmContainerd.Time),
		ratioCell(res.warmCradle.Time, res.warmContainerd.Time))
	for i := range o.rounds {
		first := "containerd"
		if cradleFirst(i + 1) {
			first = "cradle"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, first, formatSeconds(res.cradle[i].Time), formatSeconds(res.containerd[i].Time),
			ratioCell(res.cradle[i].Time, res.containerd[i].Time))
	}
	mc, md := median(times(res.cradle)), median(times(res.containerd))
	fmt.Fprintf(tw, "median\t\t%s\t%s\t%s\n", formatSeconds(mc), formatSeconds(md), ratioCell(mc, md))
	tw.Flush()
	fmt.Fprintln(w)

	tput := func(d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f MiB/s", mibPerSec(transfer, d))
	}
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "\tcradle\tcontainerd")
	fmt.Fprintf(tw, "throughput (image bytes / median time)\t%s\t%s\n", tput(mc), tput(md))
	fmt.Fprintf(tw, "CPU per pull, median (daemon + reaped children)\t%s\t%s\n", formatSeconds(median(cpus(res.cradle, false))), formatSeconds(median(cpus(res.containerd, false))))
	fmt.Fprintf(tw, "CPU per pull, median, of the registry (this process)\t%s\t%s\n", formatSeconds(median(cpus(res.cradle, true))), formatSeconds(median(cpus(res.containerd, true))))
	fmt.Fprintf(tw, "peak RSS during timed pulls (%v samples, daemon + children)\t%s\t%s\n", rssInterval, mibCell(peakRSS(res.cradle)), mibCell(peakRSS(res.containerd)))
	fmt.Fprintf(tw, "lifetime peak RSS of the daemon (VmHWM at the end)\t%s\t%s\n", mibCell(res.hwmCradle), mibCell(res.hwmContainerd))
	fmt.Fprintf(tw, "disk used by the pulled image\t%s\t%s\n", mibCell(res.warmCradle.Disk), mibCell(res.warmContainerd.Disk))
	tw.Flush()

	fmt.Fprintln(w)
	r := throughputRatio(mc, md)
	if r <= 0 {
		fmt.Fprintf(w, "ratios cradle/containerd = n/a (only %s measured)\n", o.only)
		return
	}
	var paired []float64
	for i := range res.cradle {
		paired = append(paired, throughputRatio(res.cradle[i].Time, res.containerd[i].Time))
	}
	fmt.Fprintf(w, "median of the per-round throughput ratios = %.2f (less sensitive to load that drifts between rounds)\n", medianFloat(paired))
	if bi.throughput > 0 {
		fmt.Fprintf(w, "ratio cradle/containerd throughput = %s (target >= %.2f) %s\n", formatRatio(r, bi.throughput), bi.throughput, verdict(r, bi.throughput))
	}
	wall := mc.Seconds() / md.Seconds()
	cpu := -1.0
	if cd := median(cpus(res.containerd, false)); cd > 0 {
		cpu = median(cpus(res.cradle, false)).Seconds() / cd.Seconds()
	}
	fmt.Fprintf(w, "ratio cradle/containerd wall time%s\n", underTarget(wall, bi.wall))
	if cpu >= 0 {
		fmt.Fprintf(w, "ratio cradle/containerd CPU%s\n", underTarget(cpu, bi.cpu))
	}
}

// underTarget renders " = r" and the verdict for a ratio that should stay at
// or under target (no verdict without a target).
func underTarget(r, target float64) string {
	if target <= 0 {
		return fmt.Sprintf(" = %.2f", r)
	}
	v, s := "PASS", fmt.Sprintf("%.2f", r)
	if r > target {
		v = "MISS"
		if s == fmt.Sprintf("%.2f", target) {
			s = fmt.Sprintf("%.3f", r) // "0.501", not "0.50", next to MISS
		}
	}
	return fmt.Sprintf(" = %s (target <= %.2f) %s", s, target, v)
}
