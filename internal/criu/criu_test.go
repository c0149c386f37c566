package criu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// fakeCriu writes an executable script and returns its path and the file
// each run appends a line to.
func fakeCriu(t *testing.T, body string) (path, runs string) {
	t.Helper()
	dir := t.TempDir()
	path, runs = filepath.Join(dir, "criu"), filepath.Join(dir, "runs")
	script := "#!/bin/sh\necho run >> " + runs + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, runs
}

func countRuns(t *testing.T, runs string) int {
	t.Helper()
	b, err := os.ReadFile(runs)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "run\n")
}

func TestWorkingCriuPassesAndIsCheckedOnce(t *testing.T) {
	path, runs := fakeCriu(t, `[ "$1" = check ] || exit 9; echo "Looks good."`)
	c := &Checker{Path: path}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := c.Check(context.Background()); err != nil {
				t.Errorf("Check = %v", err)
			}
		})
	}
	wg.Wait()
	if n := countRuns(t, runs); n != 1 {
		t.Errorf("criu ran %d times, want once", n)
	}
}

func TestFailingCriuQuotesOutputTail(t *testing.T) {
	path, runs := fakeCriu(t, `echo "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds" >&2
echo "Error (criu/crtools.c:260): Could not initialize kernel features detection." >&2
exit 1`)
	c := &Checker{Path: path}
	for range 2 {
		err := c.Check(context.Background())
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Fatalf("Check = %v, want FailedPrecondition", err)
		}
		if !strings.Contains(err.Error(), "Could not initialize kernel features detection.") ||
			!strings.Contains(err.Error(), "vDSO area bounds") || !strings.Contains(err.Error(), "check` failed") {
			t.Errorf("message %q lacks the output tail", err)
		}
	}
	if n := countRuns(t, runs); n != 1 {
		t.Errorf("criu ran %d times, want the verdict cached", n)
	}
}

func TestLongOutputIsCutToItsTail(t *testing.T) {
	path, _ := fakeCriu(t, `i=0; while [ $i -lt 200 ]; do echo "noise line $i"; i=$((i+1)); done; echo LAST-LINE; exit 1`)
	err := (&Checker{Path: path}).Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "LAST-LINE") || strings.Contains(err.Error(), "noise line 0 ") {
		t.Fatalf("Check = %v", err)
	}
	if len(err.Error()) > 2*tailBytes {
		t.Errorf("message is %d bytes long", len(err.Error()))
	}
}

func TestHangingCriuTimesOutAndKillsItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	// The child keeps stdout open: without the group kill and WaitDelay
	// the check would wait for it.
	path, _ := fakeCriu(t, `sleep 300 & echo $! > `+pidFile+`; wait`)
	c := &Checker{Path: path, Timeout: 300 * time.Millisecond}
	start := time.Now()
	err := c.Check(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Check took %v", took)
	}
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "did not answer within 300ms") {
		t.Fatalf("Check = %v", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join("/proc", strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := os.ReadFile(filepath.Join(proc, "stat"))
		// Gone, or a zombie waiting for its reaper: killed either way.
		if err != nil || strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("criu's child survived the timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCallerDeadlineEndsWaitButNotTheCheck(t *testing.T) {
	path, runs := fakeCriu(t, `sleep 0.5; exit 1`)
	c := &Checker{Path: path}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Check(ctx); !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Fatalf("Check with a short deadline = %v", err)
	}
	if err := c.Check(context.Background()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second Check = %v", err)
	}
	if n := countRuns(t, runs); n != 1 {
		t.Errorf("criu ran %d times", n)
	}
}

func TestMissingCriu(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	err := (&Checker{}).Check(context.Background())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("Check = %v", err)
	}
	err = (&Checker{Path: "/nonexistent/criu"}).Check(context.Background())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("Check with a missing path = %v", err)
	}
}
