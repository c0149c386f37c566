package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// initStopTimeout bounds waiting for a pod's init to die after SIGKILL.
const initStopTimeout = 30 * time.Second

// podInit runs the catatonit init of pods that share one PID namespace, on
// the pod's own runtime handler (the containers join its PID namespace, so
// it must live where they do), under the sandbox's ID. The sandbox package
// has already written the bundle.
type podInit struct {
	runtimes *handlers.Set
}

func (p podInit) runtime(handler string) (*oci.Runtime, error) {
	rt := p.runtimes.Runtime(handler)
	if rt == nil {
		if handler == "" {
			handler = p.runtimes.Default()
		}
		return nil, errdefs.FailedPrecondition("pod init: runtime handler %q is not available", handler)
	}
	return rt, nil
}

func (p podInit) Start(ctx context.Context, handler, id, bundle string, _ *specs.Spec) (int, error) {
	rt, err := p.runtime(handler)
	if err != nil {
		return 0, err
	}
	pid, err := rt.Create(ctx, oci.CreateOpts{ID: id, Bundle: bundle, LogPath: filepath.Join(bundle, "init.log")})
	if err != nil {
		return 0, fmt.Errorf("create pod init: %w", err)
	}
	if err := rt.Start(ctx, id); err != nil {
		_ = rt.Delete(context.WithoutCancel(ctx), id, true)
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	return pid, nil
}

// Sandboxed says whether the handler runs each pod in one sandbox.
func (p podInit) Sandboxed(handler string) bool {
	rt, err := p.runtime(handler)
	return err == nil && rt.Sandboxed()
}

// Stop kills the init and removes it; an init already gone is success.
func (p podInit) Stop(ctx context.Context, handler, id string) error {
	rt, err := p.runtime(handler)
	if err != nil {
		return err
	}
	return stopInit(ctx, rt, id)
}

// StopOrphan stops an init of that pod ID on every handler that has one.
func (p podInit) StopOrphan(ctx context.Context, id string) error {
	var errs []error
	for _, rt := range p.runtimes.All() {
		if !rt.Has(id) {
			if _, err := rt.State(ctx, id); errors.Is(err, errdefs.ErrNotFound) {
				continue // never on this handler
			}
		}
		errs = append(errs, stopInit(ctx, rt, id))
	}
	return errors.Join(errs...)
}

func stopInit(ctx context.Context, rt *oci.Runtime, id string) error {
	if st, err := rt.State(ctx, id); err == nil && st.Status == oci.StatusCreated {
		// Never started (a crash between create and start): there is no
		// process to wait for, and a sandboxed runtime cannot even signal
		// it. Delete kills what the create made.
		if err := rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("delete pod init: %w", err)
		}
		return nil
	}
	if err := rt.Kill(ctx, id, syscall.SIGKILL, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("kill pod init: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, initStopTimeout)
	defer cancel()
	if _, err := rt.WaitExit(wctx, id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("wait for pod init: %w", err)
	}
	if err := rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("delete pod init: %w", err)
	}
	return nil
}
