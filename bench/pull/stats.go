package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

const mib = 1 << 20

// median of ds; 0 for none. An even count averages the middle two.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// mibPerSec is bytes moved in d, in MiB/s; 0 when d is not positive.
func mibPerSec(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / mib / d.Seconds()
}

// throughputRatio is cradle's throughput over containerd's for the same image,
// which is containerd's time over cradle's; 0 when either time is missing.
func throughputRatio(cradle, containerd time.Duration) float64 {
	if cradle <= 0 || containerd <= 0 {
		return 0
	}
	return containerd.Seconds() / cradle.Seconds()
}

// medianFloat is median for plain numbers; 0 for none.
func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// formatRatio renders r with two decimals, or three where two would round a
// miss up to the target ("1.499", not "1.50", next to MISS).
func formatRatio(r, target float64) string {
	s := fmt.Sprintf("%.2f", r)
	if r < target && s == fmt.Sprintf("%.2f", target) {
		s = fmt.Sprintf("%.3f", r)
	}
	return s
}

// verdict says whether ratio meets target.
func verdict(ratio, target float64) string {
	if ratio >= target {
		return "PASS"
	}
	return "MISS"
}

// cradleFirst tells the order of a round (1-based): cradle pulls first in odd
// rounds, containerd in even ones, so that neither always runs on a machine
// the other just warmed or dirtied.
func cradleFirst(round int) bool { return round%2 == 1 }

// parseSize reads "160MiB", "100MB", "1.5GiB", "4096" or "64k" into bytes.
// Binary (KiB, MiB, GiB, and the bare K, M, G) and decimal (kB, MB, GB) units
// are accepted, case-insensitively.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, kB, MB, GB)", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (KiB, MiB, GiB, kB, MB, GB)", s, unit)
	}
	b := v * mult
	if b >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
}

// formatMiB renders bytes as MiB with one decimal.
func formatMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/mib) }

// formatSeconds renders d as seconds with millisecond precision.
func formatSeconds(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}
