package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// targets are the ceilings on cradle/containerd.
type targets struct {
	start, teardown, memory, list float64
	idleMiB                       float64 // absolute: cradle's daemon alone
}

func kibCell(k float64) string { return fmt.Sprintf("%.0f KiB", k) }

func printReport(w io.Writer, crdl, ctrd *side, t targets, width int) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "\tcradle\tcontainerd\tratio")
	row := func(label string, c, d time.Duration) {
		r := benchkit.Ratio(float64(c), float64(d))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\n", label, benchkit.FormatMs(c), benchkit.FormatMs(d), r)
	}
	pcts := func(label string, c, d []time.Duration) {
		row(fmt.Sprintf("%s p50 (n=%d/%d)", label, len(c), len(d)), benchkit.Percentile(c, 50), benchkit.Percentile(d, 50))
		row(fmt.Sprintf("%s p99", label), benchkit.Percentile(c, 99), benchkit.Percentile(d, 99))
	}
	pcts("pod start, sequential", crdl.startSeq, ctrd.startSeq)
	pcts(fmt.Sprintf("pod start, %d in parallel", width), crdl.startPar, ctrd.startPar)
	pcts("ListContainers", crdl.list, ctrd.list)
	pcts("Version (round-trip floor)", crdl.version, ctrd.version)
	for _, name := range startSteps {
		row(fmt.Sprintf("  %s p50 (sequential)", name), benchkit.Percentile(crdl.steps[name], 50), benchkit.Percentile(ctrd.steps[name], 50))
	}
	pcts("teardown", crdl.teardown, ctrd.teardown)
	for _, name := range teardownSteps {
		row(fmt.Sprintf("  %s p50", name), benchkit.Percentile(crdl.steps[name], 50), benchkit.Percentile(ctrd.steps[name], 50))
	}
	mc := perPodKiB(crdl.loaded.pssKiB, crdl.idle.pssKiB, crdl.pods)
	md := perPodKiB(ctrd.loaded.pssKiB, ctrd.idle.pssKiB, ctrd.pods)
	fmt.Fprintf(tw, "PSS idle, empty root, just started (daemon)\t%s\t%s\t%.2f\n", kibCell(float64(crdl.empty.pssKiB)), kibCell(float64(ctrd.empty.pssKiB)),
		benchkit.Ratio(float64(crdl.empty.pssKiB), float64(ctrd.empty.pssKiB)))
	fmt.Fprintf(tw, "  of which mapped files (binary) / anonymous\t%s / %s\t%s / %s\t\n",
		kibCell(float64(crdl.empty.daemonFileKiB)), kibCell(float64(crdl.empty.daemonAnonKiB)),
		kibCell(float64(ctrd.empty.daemonFileKiB)), kibCell(float64(ctrd.empty.daemonAnonKiB)))
	fmt.Fprintf(tw, "PSS idle, after the start phases (daemon)\t%s\t%s\t\n", kibCell(float64(crdl.idle.pssKiB)), kibCell(float64(ctrd.idle.pssKiB)))
	fmt.Fprintf(tw, "PSS with %d pods (daemon + monitors + pauses)\t%s\t%s\t\n", crdl.pods, kibCell(float64(crdl.loaded.pssKiB)), kibCell(float64(ctrd.loaded.pssKiB)))
	fmt.Fprintf(tw, "  processes counted: monitors / pause\t%d / %d\t%d / %d\t\n", crdl.loaded.monitors, crdl.loaded.pauses, ctrd.loaded.monitors, ctrd.loaded.pauses)
	fmt.Fprintf(tw, "memory per running pod\t%s\t%s\t%.2f\n", kibCell(mc), kibCell(md), benchkit.Ratio(mc, md))
	tw.Flush()
	fmt.Fprintln(w)

	target := func(what string, r, max float64) {
		fmt.Fprintf(w, "%-46s = %s (target <= %.2f) %s\n", what, formatRatio(r, max), max, verdict(r, max))
	}
	target("ratio cradle/containerd pod start p50 (seq)", benchkit.Ratio(float64(benchkit.Percentile(crdl.startSeq, 50)), float64(benchkit.Percentile(ctrd.startSeq, 50))), t.start)
	target(fmt.Sprintf("ratio cradle/containerd pod start p50 (x%d)", width), benchkit.Ratio(float64(benchkit.Percentile(crdl.startPar, 50)), float64(benchkit.Percentile(ctrd.startPar, 50))), t.start)
	target("ratio cradle/containerd teardown p50", benchkit.Ratio(float64(benchkit.Percentile(crdl.teardown, 50)), float64(benchkit.Percentile(ctrd.teardown, 50))), t.teardown)
	idle := float64(crdl.empty.pssKiB) / 1024
	fmt.Fprintf(w, "%-46s = %.1f MiB (target <= %.0f MiB) %s\n", "cradle idle daemon PSS, empty root", idle, t.idleMiB, verdict(idle, t.idleMiB))
	target("ratio cradle/containerd memory per pod", benchkit.Ratio(mc, md), t.memory)
	target("ratio cradle/containerd ListContainers p99", benchkit.Ratio(float64(benchkit.Percentile(crdl.list, 99)), float64(benchkit.Percentile(ctrd.list, 99))), t.list)
}
