package main

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	s := time.Second
	cases := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3 * s}, 3 * s},
		{[]time.Duration{5 * s, 1 * s, 3 * s}, 3 * s},
		{[]time.Duration{4 * s, 1 * s, 2 * s, 3 * s}, 2500 * time.Millisecond},
		{[]time.Duration{9 * s, 1 * s, 1 * s, 1 * s, 9 * s}, 1 * s}, // outliers do not move it
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	in := []time.Duration{3, 1, 2}
	median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("median reordered its input: %v", in)
	}
}

func TestThroughput(t *testing.T) {
	if got := mibPerSec(100*mib, 2*time.Second); got != 50 {
		t.Errorf("mibPerSec(100 MiB, 2s) = %v, want 50", got)
	}
	if got := mibPerSec(100*mib, 0); got != 0 {
		t.Errorf("mibPerSec with no time = %v, want 0", got)
	}
	// cradle twice as fast as containerd: ratio 2, whatever the image size.
	if got := throughputRatio(time.Second, 2*time.Second); got != 2 {
		t.Errorf("throughputRatio(1s, 2s) = %v, want 2", got)
	}
	if got := throughputRatio(0, time.Second); got != 0 {
		t.Errorf("throughputRatio without a cradle time = %v, want 0", got)
	}
	if verdict(1.5, 1.5) != "PASS" || verdict(1.49, 1.5) != "MISS" {
		t.Error("verdict must pass at the target and miss below it")
	}
	// A miss never prints as the target itself.
	for r, want := range map[float64]string{1.4986: "1.499", 1.4949: "1.49", 1.5: "1.50", 1.5049: "1.50", 2: "2.00"} {
		if got := formatRatio(r, 1.5); got != want {
			t.Errorf("formatRatio(%v, 1.5) = %q, want %q", r, got, want)
		}
	}
	if got := medianFloat([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("medianFloat = %v, want 2.5", got)
	}
	if got := medianFloat(nil); got != 0 {
		t.Errorf("medianFloat(nil) = %v, want 0", got)
	}
}

func TestCradleFirstAlternates(t *testing.T) {
	for r, want := range map[int]bool{1: true, 2: false, 3: true, 4: false} {
		if got := cradleFirst(r); got != want {
			t.Errorf("cradleFirst(%d) = %v, want %v", r, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"4096":    4096,
		"64k":     64 << 10,
		"160MiB":  160 << 20,
		"160 mib": 160 << 20,
		"100MB":   100_000_000,
		"1.5GiB":  3 << 29,
		"2G":      2 << 30,
		" 7 kB ":  7000,
		"0":       0,
		"0.5MiB":  512 << 10,
	}
	for in, want := range good {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "12 parsecs", "1.2.3MiB", "1e3bytes", "99999999999GiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestFormat(t *testing.T) {
	if got := formatMiB(3 << 19); got != "1.5 MiB" {
		t.Errorf("formatMiB = %q", got)
	}
	if got := formatSeconds(1234 * time.Millisecond); got != "1.234s" {
		t.Errorf("formatSeconds = %q", got)
	}
	if got := formatSeconds(0); got != "-" {
		t.Errorf("formatSeconds(0) = %q, want -", got)
	}
	if math.IsNaN(mibPerSec(0, time.Second)) {
		t.Error("mibPerSec(0 bytes) is NaN")
	}
}
