package main

import "fmt"

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
