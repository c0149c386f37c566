package container

import (
	"context"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// Exec runs cmd in a running container wired to s and returns its exit
// code. It ends, killing the command, when ctx does.
func (m *Manager) Exec(ctx context.Context, id string, cmd []string, s oci.StreamIO) (int, error) {
	rt, err := m.runningRuntime(id)
	if err != nil {
		return -1, err
	}
	return rt.ExecStream(ctx, id, cmd, s)
}

// AttachSocket is the path of the running container's conmon attach
// socket (SOCK_SEQPACKET).
func (m *Manager) AttachSocket(id string) (string, error) {
	rt, err := m.runningRuntime(id)
	if err != nil {
		return "", err
	}
	return rt.AttachSocketPath(id), nil
}

// ResizeTerminal sets the size of a running tty container's terminal,
// through its monitor.
func (m *Manager) ResizeTerminal(id string, width, height uint16) error {
	rt, err := m.runningRuntime(id)
	if err != nil {
		return err
	}
	return rt.ResizeTerminal(id, width, height)
}

func (m *Manager) runningRuntime(id string) (*oci.Runtime, error) {
	c, err := m.get(id)
	if err != nil {
		return nil, err
	}
	if st := c.state(); st != Running {
		return nil, errdefs.FailedPrecondition("container %s is %s, not running", id, st)
	}
	return m.runtime(c.rec.Handler)
}
