package image

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// watchdog cancels a pull that has received no byte for timeout.
type watchdog struct {
	timeout time.Duration
	last    atomic.Int64 // unix nanoseconds of the last progress
	stop    chan struct{}
	once    sync.Once
}

// startWatchdog returns nil (a no-op watchdog) when timeout is 0.
func startWatchdog(timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if timeout <= 0 {
		return nil
	}
	w := &watchdog{timeout: timeout, stop: make(chan struct{})}
	w.progress()
	tick := min(max(timeout/8, time.Millisecond), time.Second)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				if idle := now.Sub(time.Unix(0, w.last.Load())); idle >= timeout {
					cancel(errdefs.New(errdefs.ErrDeadlineExceeded, "no progress for %s (stall timeout)", timeout))
					return
				}
			}
		}
	}()
	return w
}

func (w *watchdog) progress() {
	if w != nil {
		w.last.Store(time.Now().UnixNano())
	}
}

func (w *watchdog) close() {
	if w != nil {
		w.once.Do(func() { close(w.stop) })
	}
}
