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
func (m *Manager) StopSandbox(ctx context.Context, sandboxID string, timeout time.Duration) error {
	return m.eachOfSandbox(sandboxID, func(id string) error { return m.Stop(ctx, id, timeout) })
}

// RemoveSandbox removes every container of a pod, for RemovePodSandbox.
func (m *Manager) RemoveSandbox(ctx context.Context, sandboxID string) error {
	return m.eachOfSandbox(sandboxID, func(id string) error { return m.Remove(ctx, id) })
}

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
