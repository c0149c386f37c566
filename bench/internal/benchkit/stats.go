package benchkit

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Percentile is the nearest-rank p-th percentile (0 < p <= 100) of ds: the
// smallest sample that at least p% of the samples do not exceed. It is an
// observed value, never an interpolation; 0 for no samples.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 || p <= 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// Ratio is cradle's figure over containerd's; 0 when either is missing.
func Ratio(cradle, containerd float64) float64 {
	if cradle <= 0 || containerd <= 0 {
		return 0
	}
	return cradle / containerd
}

// FormatMs renders d in milliseconds with a precision that suits its size.
func FormatMs(d time.Duration) string {
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
