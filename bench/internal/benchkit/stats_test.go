package benchkit

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
		if got := Percentile(c.in, c.p); got != c.want {
			t.Errorf("%s: Percentile(%v, %v) = %v, want %v", c.name, c.in, c.p, got, c.want)
		}
	}
}

func TestPercentileLeavesInputAlone(t *testing.T) {
	in := ms(3, 1, 2)
	Percentile(in, 50)
	if in[0] != 3*time.Millisecond || in[1] != time.Millisecond {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestRatio(t *testing.T) {
	if r := Ratio(1, 4); r != 0.25 {
		t.Errorf("Ratio(1,4) = %v", r)
	}
	if r := Ratio(0, 4); r != 0 {
		t.Errorf("missing cradle figure gave %v", r)
	}
	if r := Ratio(1, 0); r != 0 {
		t.Errorf("missing containerd figure gave %v", r)
	}
}

func TestFormatMs(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "-"}, {250 * time.Microsecond, "0.250 ms"}, {12340 * time.Microsecond, "12.3 ms"}, {1500 * time.Millisecond, "1500 ms"},
	} {
		if got := FormatMs(c.d); got != c.want {
			t.Errorf("FormatMs(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestParseRollup(t *testing.T) {
	rollup := "55d0a1c0-7ffd rw-p 00000000 00:00 0 [rollup]\nRss:  4096 kB\nPss:  1234 kB\nPss_Dirty: 7 kB\nPss_Anon: 1000 kB\nPss_File: 234 kB\n"
	if got, err := ParseRollup(strings.NewReader(rollup)); err != nil || got != (Rollup{RssKiB: 4096, PssKiB: 1234, PssAnonKiB: 1000, PssFileKiB: 234}) {
		t.Errorf("ParseRollup = %+v, %v", got, err)
	}
	if _, err := ParseRollup(strings.NewReader("Rss: 1 kB\n")); err == nil {
		t.Error("no Pss line must be an error")
	}
	if _, err := ParseRollup(strings.NewReader("Pss: lots kB\n")); err == nil {
		t.Error("a malformed number must be an error")
	}
}

func TestParsePPIDWithAwkwardCommandName(t *testing.T) {
	got, err := ParsePPID([]byte("4242 (a) b (c)) S 17 4242 4242 0 -1"))
	if err != nil || got != 17 {
		t.Errorf("parsePPID = %v, %v", got, err)
	}
	if _, err := ParsePPID([]byte("garbage")); err == nil {
		t.Error("malformed stat must be an error")
	}
}

func TestSplitCmdline(t *testing.T) {
	if got := SplitCmdline([]byte("a\x00b c\x00")); len(got) != 2 || got[1] != "b c" {
		t.Errorf("splitCmdline = %q", got)
	}
	if got := SplitCmdline(nil); got != nil {
		t.Errorf("empty = %q", got)
	}
}
