package main

import (
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentileNearestRank(t *testing.T) {
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: percentile must sort
	}
	cases := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"odd median", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"even median is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(hundred...), 99, 99 * time.Millisecond},
		{"p99 of 30 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30), 99, 30 * time.Millisecond},
		{"p100", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"p0 is no answer", ms(3, 9, 1), 0, 0},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("%s: percentile(%v, %v) = %v, want %v", c.name, c.in, c.p, got, c.want)
		}
	}
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	in := ms(3, 1, 2)
	percentile(in, 50)
	if in[0] != 3*time.Millisecond || in[1] != time.Millisecond {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestRatioAndVerdict(t *testing.T) {
	if r := ratio(1, 4); r != 0.25 {
		t.Errorf("ratio(1,4) = %v", r)
	}
	if r := ratio(0, 4); r != 0 {
		t.Errorf("missing cradle figure gave %v", r)
	}
	if r := ratio(1, 0); r != 0 {
		t.Errorf("missing containerd figure gave %v", r)
	}
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

func TestFormatMs(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "-"}, {250 * time.Microsecond, "0.250 ms"}, {12340 * time.Microsecond, "12.3 ms"}, {1500 * time.Millisecond, "1500 ms"},
	} {
		if got := formatMs(c.d); got != c.want {
			t.Errorf("formatMs(%v) = %q, want %q", c.d, got, c.want)
		}
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

func TestParsePss(t *testing.T) {
	rollup := "55d0a1c0-7ffd rw-p 00000000 00:00 0 [rollup]\nRss:  4096 kB\nPss:  1234 kB\nPss_Anon: 1000 kB\n"
	if got, err := parsePss(strings.NewReader(rollup)); err != nil || got != 1234 {
		t.Errorf("parsePss = %v, %v", got, err)
	}
	if _, err := parsePss(strings.NewReader("Rss: 1 kB\n")); err == nil {
		t.Error("no Pss line must be an error")
	}
}

func TestParsePPIDWithAwkwardCommandName(t *testing.T) {
	got, err := parsePPID([]byte("4242 (a) b (c)) S 17 4242 4242 0 -1"))
	if err != nil || got != 17 {
		t.Errorf("parsePPID = %v, %v", got, err)
	}
	if _, err := parsePPID([]byte("garbage")); err == nil {
		t.Error("malformed stat must be an error")
	}
}

func TestRuntimeProcsCountsMonitorsAndPausesNotWorkloads(t *testing.T) {
	isShim := func(argv []string) bool { return len(argv) > 0 && argv[0] == "shim" }
	ps := []proc{
		{pid: 10, ppid: 1, argv: []string{"containerd"}},
		{pid: 20, ppid: 1, argv: []string{"shim", "-address", "mine"}},
		{pid: 21, ppid: 20, argv: []string{"/pause", "-P"}},
		{pid: 22, ppid: 20, argv: []string{"sh", "-c", "sleep"}},
		{pid: 30, ppid: 1, argv: []string{"other-daemon"}},
		{pid: 31, ppid: 30, argv: []string{"/pause"}}, // someone else's pause
		{pid: 40, ppid: 10, argv: []string{"catatonit", "-P"}},
	}
	pids, monitors, pauses := runtimeProcs(ps, 10, isShim)
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

func TestSplitCmdline(t *testing.T) {
	if got := splitCmdline([]byte("a\x00b c\x00")); len(got) != 2 || got[1] != "b c" {
		t.Errorf("splitCmdline = %q", got)
	}
	if got := splitCmdline(nil); got != nil {
		t.Errorf("empty = %q", got)
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
