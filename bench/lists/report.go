package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// printReport prints one row per size and variant, then the verdicts.
func printReport(w io.Writer, cells []cell, o options) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "size\tcall\tfilter\titems c/d\tKiB c/d\tdecode c/d\tcradle p50\tp99\tcontainerd p50\tp99\tratio p50\tp99\tcradle server p50\tp99\tverdict\t")
	pass, miss := 0, 0
	for _, c := range cells {
		p50, p99 := c.ratios()
		server := "-\t-"
		if c.hasServer && c.server.n > 0 {
			server = benchkit.FormatMs(c.server.p50) + "\t" + benchkit.FormatMs(c.server.p99)
		}
		ctrd := benchkit.FormatMs(benchkit.Percentile(c.ctrd, 50)) + "\t" + benchkit.FormatMs(benchkit.Percentile(c.ctrd, 99))
		ratio := fmt.Sprintf("%.2f\t%.2f", p50, p99)
		items := fmt.Sprintf("%d/%d\t%.1f/%.1f\t%s/%s", c.items[0], c.items[1], float64(c.bytes[0])/1024, float64(c.bytes[1])/1024,
			benchkit.FormatMs(c.decode[0]), benchkit.FormatMs(c.decode[1]))
		if c.ctrdErr != "" {
			ctrd, ratio, items = c.ctrdErr+"\t-", "-\t-", fmt.Sprintf("%d/-\t%.1f/-\t%s/-", c.items[0], float64(c.bytes[0])/1024, benchkit.FormatMs(c.decode[0]))
		}
		verdict := ""
		if c.v.rpc != "Version" && c.ctrdErr == "" {
			limit := o.target
			if c.size <= o.smallSize {
				limit = o.targetSmall
			}
			if p50 <= limit && p99 <= limit {
				verdict = fmt.Sprintf("PASS (<= %.2f)", limit)
				pass++
			} else {
				verdict = fmt.Sprintf("MISS (<= %.2f)", limit)
				miss++
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", c.size, c.v.label(), c.v.filter, items,
			benchkit.FormatMs(benchkit.Percentile(c.crdl, 50)), benchkit.FormatMs(benchkit.Percentile(c.crdl, 99)),
			ctrd, ratio, server, verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntargets: %d PASS, %d MISS (Version: the round-trip floor, no target; Stream* rows compare with containerd's\n", pass, miss)
	fmt.Fprintf(w, "List* fallback, what kubelet gets from containerd 1.6; decode = the client's own time to decode the items, in every call)\n")
}
