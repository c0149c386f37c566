package cli

import (
	"strings"
	"testing"
	"time"
)

func TestSpinnerFrame(t *testing.T) {
	if got, want := spinnerFrame(0, "Pulling busybox", 4200*time.Millisecond), "\r\033[K⠋ Pulling busybox (4.2s)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Frames cycle.
	if spinnerFrame(1, "x", 0) == spinnerFrame(0, "x", 0) || spinnerFrame(len(spinnerFrames), "x", 0) != spinnerFrame(0, "x", 0) {
		t.Error("frames do not cycle")
	}
}

func TestFormatElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0.0s",
		4290 * time.Millisecond:               "4.2s", // truncated, never ahead of the clock
		59999 * time.Millisecond:              "59.9s",
		time.Minute:                           "1m00s",
		65*time.Second + 900*time.Millisecond: "1m05s",
		61 * time.Minute:                      "61m00s",
	} {
		if got := formatElapsed(d); got != want {
			t.Errorf("formatElapsed(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSpinnerStopClearsAndStopsWriting(t *testing.T) {
	var buf syncBuffer
	// A long interval: only the immediate first frame is drawn.
	s := startSpinner(&buf, "Pulling x", time.Hour)
	waitFor(t, func() bool { return strings.Contains(buf.String(), "Pulling x") })
	s.Stop()
	s.Stop() // idempotent
	out := buf.String()
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("the display is not erased: %q", out)
	}
	if buf.String() != out {
		t.Error("spinner wrote after Stop returned")
	}
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
