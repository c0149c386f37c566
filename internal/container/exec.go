package container

import (
	"context"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// ExecResult is what an ExecSync command printed and how it ended.
type ExecResult = oci.ExecResult

// ExecSync runs cmd in a running container and waits for it, at most
// timeout (0: no limit but ctx). Past the timeout the command's processes
// are killed and the error is ErrDeadlineExceeded, with the output so far.
// Output is capped at 16 MiB per stream.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (ExecResult, error) {
	c, err := m.get(id)
	if err != nil {
		return ExecResult{}, err
	}
	if st := c.state(); st != Running {
		return ExecResult{}, errdefs.FailedPrecondition("container %s is %s, not running", id, st)
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return ExecResult{}, err
	}
	// Not under c.op: probes run while Stop waits for the exit.
	return rt.ExecSync(ctx, id, oci.ExecOpts{Cmd: cmd, Timeout: timeout})
}

// ReopenLog makes the container's monitor reopen its log file after
// kubelet renamed it for rotation.
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if st := c.state(); st != Running {
		return errdefs.FailedPrecondition("container %s is %s, not running", id, st)
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return err
	}
	return rt.ReopenLog(ctx, id)
}
