package bounded

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAtMostWorkersAtOnceEachWithItsDeadline(t *testing.T) {
	var wg sync.WaitGroup
	var running, peak, ran atomic.Int32
	release := make(chan struct{})
	jobs := make([]func(context.Context), 10)
	for i := range jobs {
		jobs[i] = func(ctx context.Context) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			if _, ok := ctx.Deadline(); !ok {
				t.Error("a job without its deadline")
			}
			<-release
			running.Add(-1)
			ran.Add(1)
		}
	}
	Go(context.Background(), &wg, 3, time.Minute, jobs)
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if ran.Load() != 10 || peak.Load() != 3 {
		t.Errorf("ran %d jobs, at most %d at once; want 10, 3", ran.Load(), peak.Load())
	}
}

func TestJobsWaitingWhenCtxEndsAreNotRun(t *testing.T) {
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	started, block := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var ran atomic.Int32
	job := func(context.Context) {
		once.Do(func() { close(started) })
		<-block
		ran.Add(1)
	}
	Go(ctx, &wg, 1, 0, []func(context.Context){job, job})
	<-started // one job holds the only worker; the other waits
	cancel()
	close(block)
	wg.Wait()
	if ran.Load() != 1 {
		t.Errorf("ran %d jobs, want 1: the waiting one must not run after ctx ended", ran.Load())
	}
}
