package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// handlerApplier applies [runtime.handlers.*] and default_handler. Pods
// and containers keep the handler they were made with: a pod without a
// RuntimeClass recorded the default of its day, so a new default only
// applies to new pods. A handler the reload removes is retired, not
// closed, while it has containers: they can still be stopped and removed.
// A handler whose settings change while it has containers keeps its old
// settings (and says so) until they are gone and the next reload, or a
// restart, applies them: its containers live under the old runtime root.
func handlerApplier(set *handlers.Set, host spec.HostFacts, log *slog.Logger) Applier {
	return Applier{Section: "runtime", Prepare: func(ctx context.Context, cur, next *config.Loaded) (func(), func(), error) {
		conmon, err := exec.LookPath("conmon")
		if err != nil {
			return nil, nil, fmt.Errorf("conmon not found in PATH: %w", err)
		}
		old := set.Load()
		snap := handlers.Snapshot{
			Default:  next.Runtime.DefaultHandler,
			Runtimes: maps.Clone(old.Runtimes),
			Features: maps.Clone(old.Features),
		}
		if snap.Runtimes == nil {
			snap.Runtimes = map[string]*oci.Runtime{}
		}
		if snap.Features == nil {
			snap.Features = map[string]spec.RuntimeFeatures{}
		}
		var opened, replaced, retire, revive []*oci.Runtime
		abort := func() { closeAll(opened) }
		fresh := map[string]*oci.Runtime{}
		for _, name := range slices.Sorted(maps.Keys(next.Runtime.Handlers)) {
			h := next.Runtime.Handlers[name]
			prev := old.Runtimes[name]
			rc, err := runtimeConfig(next, name, h, conmon, log)
			if err == nil && prev != nil && sameRuntime(prev.Settings(), rc) {
				if prev.Retired() {
					revive = append(revive, prev)
				}
				continue
			}
			if prev != nil && oci.HasContainers(prev.Settings().StateDir) {
				log.Warn("runtime handler changed but has containers: it keeps its old settings until they are gone and the configuration is reloaded again",
					"handler", name, "runtime", prev.Settings().RuntimePath, "retired", prev.Retired())
				continue
			}
			var rt *oci.Runtime
			if err == nil {
				rt, err = oci.New(rc)
			}
			if err != nil {
				if name == next.Runtime.DefaultHandler {
					abort()
					return nil, nil, fmt.Errorf("default runtime handler %q: %w", name, err)
				}
				log.Warn("runtime handler unavailable", "handler", name, "err", err)
				if prev != nil {
					replaced = append(replaced, prev)
					delete(snap.Runtimes, name)
					delete(snap.Features, name)
				}
				continue
			}
			opened = append(opened, rt)
			fresh[name] = rt
			snap.Runtimes[name] = rt
			if prev != nil {
				replaced = append(replaced, prev)
			}
		}
		for name, rt := range old.Runtimes {
			if _, ok := next.Runtime.Handlers[name]; ok {
				continue
			}
			delete(snap.Features, name)
			if oci.HasContainers(rt.Settings().StateDir) {
				if !rt.Retired() {
					retire = append(retire, rt)
					log.Warn("runtime handler removed from the configuration but has containers: they can be stopped and removed, not created", "handler", name)
				}
				continue
			}
			delete(snap.Runtimes, name)
			replaced = append(replaced, rt)
		}
		if def := snap.Runtimes[snap.Default]; def == nil || (def.Retired() && !slices.Contains(revive, def)) {
			abort()
			return nil, nil, fmt.Errorf("default runtime handler %q is not usable", snap.Default)
		}
		for name, f := range detectRuntimeFeatures(ctx, next, fresh, host, log) {
			if name != "" {
				snap.Features[name] = f
			}
		}
		commit := func() {
			for _, rt := range revive {
				if err := rt.SetRetired(false); err != nil {
					log.Warn("runtime handler configured again, but its record could not be written", "err", err)
				}
			}
			for _, rt := range retire {
				_ = rt.SetRetired(true)
			}
			if f, ok := snap.Features[snap.Default]; ok {
				snap.Features[""] = f
			} else {
				delete(snap.Features, "")
			}
			set.Swap(snap)
			// A call that took a replaced runtime before the swap may
			// still use it for an instant; those runtimes had no
			// container, and Close leaves the state dir to the new one.
			closeAll(replaced)
		}
		return commit, abort, nil
	}}
}

// sameRuntime says whether a handler's new configuration drives the same
// runtime the same way.
func sameRuntime(have, want oci.Config) bool {
	return filepath.Clean(have.RuntimePath) == filepath.Clean(want.RuntimePath) &&
		filepath.Clean(have.RuntimeRoot) == filepath.Clean(want.RuntimeRoot) &&
		have.SystemdCgroup == want.SystemdCgroup && have.CallTimeout == want.CallTimeout &&
		have.StateDir == want.StateDir
}

func closeAll(rts []*oci.Runtime) {
	for _, rt := range rts {
		_ = rt.Close()
	}
}
