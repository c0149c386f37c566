package main

import (
	"testing"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		r, target float64
		want      string
	}{
		{0.25, 0.5, "PASS"}, {0.5, 0.5, "PASS"}, {0.51, 0.5, "MISS"}, {0, 0.5, "MISS"}, {-1, 0.5, "MISS"},
	} {
		if got := verdict(c.r, c.target); got != c.want {
			t.Errorf("verdict(%v, %v) = %s, want %s", c.r, c.target, got, c.want)
		}
	}
}

func TestFormatRatioNeverShowsAMissAsTheTarget(t *testing.T) {
	if got := formatRatio(0.503, 0.5); got != "0.503" {
		t.Errorf("miss next to target = %q", got)
	}
	if got := formatRatio(0.497, 0.5); got != "0.50" {
		t.Errorf("pass next to target = %q", got)
	}
	if got := formatRatio(0.1234, 0.2); got != "0.12" {
		t.Errorf("plain = %q", got)
	}
}

func TestAlternation(t *testing.T) {
	if !cradleFirst(0) || cradleFirst(1) || !cradleFirst(2) {
		t.Fatal("rounds must alternate, cradle first in round 0")
	}
}

func TestPerPodKiB(t *testing.T) {
	if got := perPodKiB(30000, 10000, 20); got != 1000 {
		t.Errorf("perPodKiB = %v", got)
	}
	if got := perPodKiB(30000, 10000, 0); got != 0 {
		t.Errorf("no pods gave %v", got)
	}
	if got := perPodKiB(9000, 10000, 10); got != -100 {
		t.Errorf("shrinking below idle must show, got %v", got)
	}
}

func TestRuntimeProcsCountsMonitorsAndPausesNotWorkloads(t *testing.T) {
	isShim := func(argv []string) bool { return len(argv) > 0 && argv[0] == "shim" }
	ps := []benchkit.Proc{
		{Pid: 10, PPid: 1, Argv: []string{"containerd"}},
		{Pid: 20, PPid: 1, Argv: []string{"shim", "-address", "mine"}},
		{Pid: 21, PPid: 20, Argv: []string{"/pause", "-P"}},
		{Pid: 22, PPid: 20, Argv: []string{"sh", "-c", "sleep"}},
		{Pid: 30, PPid: 1, Argv: []string{"other-daemon"}},
		{Pid: 31, PPid: 30, Argv: []string{"/pause"}}, // someone else's pause
		{Pid: 40, PPid: 10, Argv: []string{"catatonit", "-P"}},
	}
	pids, monitors, pauses := benchkit.RuntimeProcs(ps, 10, isShim)
	want := map[int]bool{10: true, 20: true, 21: true, 40: true}
	if len(pids) != len(want) || monitors != 1 || pauses != 2 {
		t.Fatalf("pids %v monitors %d pauses %d", pids, monitors, pauses)
	}
	for _, p := range pids {
		if !want[p] {
			t.Errorf("counted pid %d", p)
		}
	}
}

func TestMiddleIsTheMedianSample(t *testing.T) {
	in := []overhead{{pssKiB: 900, monitors: 1}, {pssKiB: 100, monitors: 2}, {pssKiB: 500, monitors: 3}}
	if got := middle(in); got.monitors != 3 {
		t.Errorf("middle = %+v", got)
	}
	if in[0].pssKiB != 900 {
		t.Error("input reordered")
	}
}
