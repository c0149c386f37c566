// Package bounded runs background jobs a few at a time: recovery at start
// must not fork hundreds of runtime or CNI processes together, nor let one
// slow object hold up the others.
package bounded

import (
	"context"
	"sync"
	"time"
)

// Go starts jobs in the background, at most workers at once, each with
// its own timeout (0: none) under ctx; wg counts them. A job still waiting
// for a worker when ctx ends is not run.
func Go(ctx context.Context, wg *sync.WaitGroup, workers int, timeout time.Duration, jobs []func(context.Context)) {
	sem := make(chan struct{}, workers)
	for _, job := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return // both were ready: select chose at random
			}
			jctx, cancel := ctx, context.CancelFunc(func() {})
			if timeout > 0 {
				jctx, cancel = context.WithTimeout(ctx, timeout)
			}
			defer cancel()
			job(jctx)
		}()
	}
}
