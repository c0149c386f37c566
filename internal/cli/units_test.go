package cli

import (
	"math"
	"testing"
)

func TestHumanSize(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want string
	}{
		{0, "0B"},
		{999, "999B"},
		{1000, "1kB"},
		{742000, "742kB"},
		{1150000, "1.15MB"}, // crictl's README example
		{4261550, "4.26MB"}, // three significant digits
		{999499, "999kB"},   // rounds down, stays in kB
		{999500, "1MB"},     // rounds up into the next unit, not "1e+03kB"
		{1 << 30, "1.07GB"}, // 1000-based, not 1024
		{math.MaxUint64, "18.4EB"},
	} {
		if got := humanSize(tc.in); got != tc.want {
			t.Errorf("humanSize(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := humanSizePrecision(123456789, 4); got != "123.5MB" {
		t.Errorf("precision 4: got %q", got)
	}
}
