package container

import (
	"context"
	"errors"
	"sync"
	"time"
)

// StopSandbox stops every running container of a pod in parallel, each
// with the given grace timeout: StopPodSandbox calls it before tearing the
// pod's namespaces down.
// Creates in flight in the pod are cancelled and waited for first, and
// later ones refused, so none slips past the stop.
func (m *Manager) StopSandbox(ctx context.Context, sandboxID string, timeout time.Duration) error {
	m.gates.close(sandboxID)
	return m.eachOfSandbox(sandboxID, func(id string) error { return m.Stop(ctx, id, timeout) })
}

// RemoveSandbox removes every container of a pod, for RemovePodSandbox.
func (m *Manager) RemoveSandbox(ctx context.Context, sandboxID string) error {
	m.gates.close(sandboxID)
	return m.eachOfSandbox(sandboxID, func(id string) error { return m.Remove(ctx, id) })
}

// SandboxRemoved forgets what the manager kept about a pod that is gone
// for good (its gate, which stays closed until then).
func (m *Manager) SandboxRemoved(sandboxID string) { m.gates.forget(sandboxID) }

func (m *Manager) eachOfSandbox(sandboxID string, fn func(id string) error) error {
	cs := m.ForSandbox(sandboxID)
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() { errs[i] = fn(c.ID) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
