package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// hangingScript is a runtime that hangs in a child process, as a wrapper
// script around a runtime that hangs does; the child's argv names marker
// (a number of seconds, for sleep).
func hangingScript(t *testing.T, marker string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hang")
	script := fmt.Sprintf("#!/bin/sh\nsleep %s\nexit 1\n", marker)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// A runtime command that hangs is killed with its children when the
// caller's deadline passes, and fails as DeadlineExceeded.
func TestHungRuntimeCommandIsKilledWithItsChildren(t *testing.T) {
	marker := fmt.Sprintf("3599.%d1", os.Getpid())
	dir := t.TempDir()
	r, err := New(Config{RuntimePath: hangingScript(t, marker), RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = r.Start(ctx, "c1")
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("Start on a hung runtime = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > commandWaitDelay {
		t.Errorf("Start returned after %v: the hung child held its output", took)
	}
	eventually(t, 5*time.Second, "the hung runtime's child to be killed", func() bool {
		return len(processesMentioning(marker)) == 0
	})
	// The test binary is a child subreaper, as the daemon is: the killed
	// script's child is re-parented to it and must be reaped.
	eventually(t, 5*time.Second, "the killed child to be reaped", func() bool {
		return len(zombieChildren()) == 0
	})
}

// Config.CallTimeout bounds a command when the caller has no deadline.
func TestCallTimeoutBoundsRuntimeCommands(t *testing.T) {
	marker := fmt.Sprintf("3599.%d2", os.Getpid())
	dir := t.TempDir()
	r, err := New(Config{RuntimePath: hangingScript(t, marker), RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s",
		CallTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Kill(context.Background(), "c1", syscall.SIGTERM, false)
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("Kill on a hung runtime = %v, want DeadlineExceeded", err)
	}
	eventually(t, 5*time.Second, "the hung runtime's child to be killed", func() bool {
		return len(processesMentioning(marker)) == 0
	})
}

// A runtime whose `features` hangs is killed with its children when the
// probe's deadline passes.
func TestHungFeaturesProbeIsKilledWithItsChildren(t *testing.T) {
	marker := fmt.Sprintf("3599.%d3", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DetectFeatures(ctx, hangingScript(t, marker)); err == nil {
		t.Fatal("a hung features probe succeeded")
	}
	if took := time.Since(start); took > commandWaitDelay {
		t.Errorf("the probe returned after %v: the hung child held its output", took)
	}
	eventually(t, 5*time.Second, "the hung probe's child to be killed and reaped", func() bool {
		return len(processesMentioning(marker)) == 0 && len(zombieChildren()) == 0
	})
}
