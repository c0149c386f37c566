package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds: the
// smallest sample that at least p% of the samples do not exceed. It is an
// observed value, never an interpolation; 0 for no samples.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 || p <= 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// ratio is cradle's figure over containerd's; 0 when either is missing.
func ratio(cradle, containerd float64) float64 {
	if cradle <= 0 || containerd <= 0 {
		return 0
	}
	return cradle / containerd
}

// verdict: every target of this benchmark is a ceiling (less is better).
func verdict(r, target float64) string {
	if r > 0 && r <= target {
		return "PASS"
	}
	return "MISS"
}

// formatRatio renders r with two decimals, or three where two would round a
// miss down onto the target ("0.503", not "0.50", next to MISS).
func formatRatio(r, target float64) string {
	s := fmt.Sprintf("%.2f", r)
	if r > target && s == fmt.Sprintf("%.2f", target) {
		s = fmt.Sprintf("%.3f", r)
	}
	return s
}

// formatMs renders d in milliseconds with a precision that suits its size.
func formatMs(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d <= 0:
		return "-"
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

// cradleFirst tells the order of round i (0-based): cradle first in even
// rounds, containerd in odd ones, so neither always runs on a machine the
// other just warmed or dirtied.
func cradleFirst(i int) bool { return i%2 == 0 }

// perPodKiB is the memory a running pod costs: the runtime's PSS with pods
// running over its idle PSS, divided by the pods.
func perPodKiB(loaded, idle int64, pods int) float64 {
	if pods <= 0 {
		return 0
	}
	return float64(loaded-idle) / float64(pods)
}
