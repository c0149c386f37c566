package cri

import (
	"math"
	"testing"
	"time"
)

func TestSecondsDoNotOverflow(t *testing.T) {
	for n, want := range map[int64]time.Duration{0: 0, 30: 30 * time.Second,
		math.MaxInt64 / int64(time.Second):   time.Duration(math.MaxInt64/int64(time.Second)) * time.Second,
		math.MaxInt64/int64(time.Second) + 1: math.MaxInt64, math.MaxInt64: math.MaxInt64} {
		if got := seconds(n); got != want {
			t.Errorf("seconds(%d) = %v, want %v", n, got, want)
		}
	}
}
