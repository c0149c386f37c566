package daemon

import (
	"context"
	"log/slog"
	"sync"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// detectRuntimeFeatures asks the runtime of every usable handler what it
// supports (its cached answer when the binary has not changed since), once
// at start-up and in parallel (each has its own timeout), and
// combines that with the host's facts. The default handler is also filed
// under "", the name kubelet and the pods use for it. A runtime that cannot
// answer gets no optional feature: Status must never promise what a
// container create would then refuse.
func detectRuntimeFeatures(ctx context.Context, cfg *config.Loaded, runtimes map[string]*oci.Runtime, host spec.HostFacts, log *slog.Logger) map[string]spec.RuntimeFeatures {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[string]spec.RuntimeFeatures, len(runtimes)+1)
	)
	for name, rt := range runtimes {
		wg.Go(func() {
			var opts, caps []string
			f, err := rt.Features(ctx)
			if err == nil {
				opts = f.MountOptions
				if f.Linux != nil {
					caps = f.Linux.Capabilities
				}
			}
			if err != nil {
				log.Warn("runtime features unknown; the handler is reported without optional features", "handler", name, "err", err)
			}
			rf := spec.NewRuntimeFeatures(host, opts, caps)
			log.Info("runtime handler features", "handler", name, "recursive_read_only_mounts", rf.RecursiveReadOnly)
			mu.Lock()
			out[name] = rf
			mu.Unlock()
		})
	}
	wg.Wait()
	if f, ok := out[cfg.Runtime.DefaultHandler]; ok {
		out[""] = f
	}
	return out
}
