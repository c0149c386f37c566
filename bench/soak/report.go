package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// printResults prints throughput and per-RPC latency side by side, with
// cradle/containerd ratios when both ran, then failures and the resource
// samples with their growth.
func printResults(w io.Writer, ss []*soaker, checkpoints []int, l limits) {
	crdl, ctrd := find(ss, "cradle"), find(ss, "containerd")
	both := crdl != nil && ctrd != nil
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	var head []string
	for _, s := range ss {
		head = append(head, s.name)
	}
	if both {
		head = append(head, "cradle/containerd")
	}
	fmt.Fprintf(tw, "\t%s\n", strings.Join(head, "\t"))
	// A negative r is no ratio. Every row has every cell, or tabwriter
	// ends the column block.
	row := func(label string, cells []string, r float64) {
		switch {
		case both && r >= 0:
			cells = append(cells, fmt.Sprintf("%.2f", r))
		case both:
			cells = append(cells, "-")
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, strings.Join(cells, "\t"))
	}
	var cells []string
	for _, s := range ss {
		cells = append(cells, fmt.Sprintf("%.2f", s.lifecyclesPerSec()))
	}
	row("lifecycles/s", cells, ratioOf(crdl, ctrd, func(s *soaker) float64 { return s.lifecyclesPerSec() }))
	cells = nil
	for _, s := range ss {
		cells = append(cells, fmt.Sprintf("%d/%d", s.done, s.done+countFailures(s, true)))
	}
	row("lifecycles completed", cells, -1)
	for r := range numRPCs {
		for _, p := range []float64{50, 99} {
			cells = nil
			for _, s := range ss {
				cells = append(cells, benchkit.FormatMs(benchkit.Percentile(s.lat[r], p)))
			}
			get := func(s *soaker) float64 { return float64(benchkit.Percentile(s.lat[r], p)) }
			row(fmt.Sprintf("%s p%.0f", r, p), cells, ratioOf(crdl, ctrd, get))
		}
	}
	tw.Flush()

	for _, s := range ss {
		if len(s.failures) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d failed lifecycles", s.name, len(s.failures))
		perRPC := map[rpc]int{}
		for _, f := range s.failures {
			perRPC[f.rpc]++
		}
		for r := range numRPCs {
			if perRPC[r] > 0 {
				fmt.Fprintf(w, ", %d at %s", perRPC[r], r)
			}
		}
		fmt.Fprintln(w)
		for i, f := range s.failures {
			if i == 5 {
				fmt.Fprintf(w, "  ... and %d more\n", len(s.failures)-5)
				break
			}
			fmt.Fprintf(w, "  %s\n", s.failureLine(f))
		}
	}

	fmt.Fprintf(w, "\ndaemon process at 0, %s lifecycles (median of 3 samples, all pods removed); LEAK? = growth 0->%d above %s\n",
		joinInts(checkpoints[1:]), checkpoints[len(checkpoints)-1], describeLimits(l))
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	cols := []string{"", ""}
	for _, c := range checkpoints {
		cols = append(cols, fmt.Sprintf("@%d", c))
	}
	cols = append(cols, "growth", "verdict")
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, s := range ss {
		for _, m := range metrics(l) {
			fmt.Fprintln(tw, strings.Join(metricRow(s.name, m, s.samples, checkpoints), "\t"))
		}
	}
	tw.Flush()
}

// metricRow is one figure of one runtime at each checkpoint, its growth
// from the first to the last and the verdict.
func metricRow(name string, m metric, samples map[int]sample, checkpoints []int) []string {
	cells := []string{name, m.name}
	for _, c := range checkpoints {
		s, ok := samples[c]
		v := m.get(s)
		switch {
		case !ok || v < 0:
			cells = append(cells, "-")
		case m.kib:
			cells = append(cells, fmt.Sprintf("%.1f MiB", float64(v)/1024))
		default:
			cells = append(cells, fmt.Sprint(v))
		}
	}
	first, okF := samples[checkpoints[0]]
	last, okL := samples[checkpoints[len(checkpoints)-1]]
	a, b := m.get(first), m.get(last)
	if !okF || !okL || a < 0 || b < 0 {
		return append(cells, "-", "-")
	}
	var growth string
	switch {
	case m.kib && a > 0:
		growth = fmt.Sprintf("%+.1f%%", float64(b-a)/float64(a)*100)
	default:
		growth = fmt.Sprintf("%+d", b-a)
	}
	verdict := "ok"
	if m.grew(a, b) {
		verdict = "LEAK?"
	}
	return append(cells, growth, verdict)
}

func describeLimits(l limits) string {
	return fmt.Sprintf("fds +%d, threads +%d, goroutines +%d, RSS/PSS +%.0f%%", l.fds, l.threads, l.goroutines, l.memPercent)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, " and ")
}

func find(ss []*soaker, name string) *soaker {
	for _, s := range ss {
		if s.name == name {
			return s
		}
	}
	return nil
}

func ratioOf(crdl, ctrd *soaker, get func(*soaker) float64) float64 {
	if crdl == nil || ctrd == nil {
		return 0
	}
	return benchkit.Ratio(get(crdl), get(ctrd))
}

// countFailures counts the failed lifecycles (counted ones only when
// countedOnly: warm-up failures are reported but not in the total).
func countFailures(s *soaker, countedOnly bool) int {
	n := 0
	for _, f := range s.failures {
		if !countedOnly || f.lifecycle >= 0 {
			n++
		}
	}
	return n
}
