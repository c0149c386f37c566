package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// initStopTimeout bounds waiting for a pod's init to die after SIGKILL.
const initStopTimeout = 30 * time.Second

// podInit runs the catatonit init of pods that share one PID namespace, on
// the default runtime, under the sandbox's ID. The sandbox package has
// already written the bundle.
type podInit struct{ rt *oci.Runtime }

func (p podInit) Start(ctx context.Context, id, bundle string, _ *specs.Spec) (int, error) {
	pid, err := p.rt.Create(ctx, oci.CreateOpts{ID: id, Bundle: bundle, LogPath: filepath.Join(bundle, "init.log")})
	if err != nil {
		return 0, fmt.Errorf("create pod init: %w", err)
	}
	if err := p.rt.Start(ctx, id); err != nil {
		_ = p.rt.Delete(context.WithoutCancel(ctx), id, true)
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	return pid, nil
}

// Stop kills the init and removes it; an init already gone is success.
func (p podInit) Stop(ctx context.Context, id string) error {
	if err := p.rt.Kill(ctx, id, syscall.SIGKILL, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("kill pod init: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, initStopTimeout)
	defer cancel()
	if _, err := p.rt.WaitExit(wctx, id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("wait for pod init: %w", err)
	}
	if err := p.rt.Delete(ctx, id, true); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("delete pod init: %w", err)
	}
	return nil
}
