package container

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// NRIHooks hear of a container's lifecycle for NRI plugins (internal/nri,
// wired by the daemon). Create may adjust the spec before it is written and
// fail the create; Update may change the resources to apply. The others
// cannot fail what they follow: their errors are the hook's to log.
type NRIHooks interface {
	// BlockSync holds back a connecting plugin's synchronization until
	// release is called: from before Create until the container is listed.
	BlockSync() (release func())
	Create(ctx context.Context, c Container, s *specs.Spec) error
	PostCreate(ctx context.Context, c Container, s *specs.Spec)
	Start(ctx context.Context, c Container, s *specs.Spec)
	PostStart(ctx context.Context, c Container, s *specs.Spec)
	Update(ctx context.Context, c Container, s *specs.Spec, r *specs.LinuxResources) (*specs.LinuxResources, error)
	PostUpdate(ctx context.Context, c Container, s *specs.Spec)
	// Stop is told once per container: at its exit, or at its removal if
	// it never ran.
	Stop(ctx context.Context, c Container, s *specs.Spec)
	Remove(ctx context.Context, c Container, s *specs.Spec)
}

// Spec returns a container's OCI spec as written to its bundle; nil if it
// cannot be read.
func (m *Manager) Spec(id string) *specs.Spec {
	c, err := m.get(id)
	if err != nil {
		return nil
	}
	return m.specOf(c)
}

// specOf returns c's spec: kept from its create, else read back from the
// bundle once (a container from before a restart).
func (m *Manager) specOf(c *ctr) *specs.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spec != nil {
		return c.spec
	}
	data, err := os.ReadFile(filepath.Join(m.bundle(c.rec.ID), "config.json"))
	if err != nil {
		return nil
	}
	var s specs.Spec
	if json.Unmarshal(data, &s) != nil {
		return nil
	}
	c.spec = &s
	return c.spec
}

// ApplyResources applies resources an NRI plugin asks for to a created or
// running container, as UpdateResources does with kubelet's, without
// telling the plugins again. The record keeps kubelet's resources: they
// are what ContainerStatus reports and what kubelet's next update merges
// into.
func (m *Manager) ApplyResources(ctx context.Context, id string, res *specs.LinuxResources) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if err := waitRecovered(ctx, c); err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if st := c.state(); st != Created && st != Running {
		return errdefs.FailedPrecondition("container %s is %s: its resources cannot be updated", id, st)
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return err
	}
	if err := rt.UpdateResources(ctx, id, res); err != nil {
		return err
	}
	if err := m.rewriteBundleResources(id, res); err != nil {
		m.log.Warn("NRI update: bundle keeps the old resources", "id", id, "err", err)
	}
	m.forgetSpec(c)
	return nil
}

// Evict stops a container an NRI plugin evicts, at once (SIGKILL); its
// exit reason says so.
func (m *Manager) Evict(ctx context.Context, id, reason string) error {
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.evicted = reason
	if c.evicted == "" {
		c.evicted = "evicted by an NRI plugin"
	}
	c.mu.Unlock()
	return m.Stop(ctx, id, 0)
}

// forgetSpec drops the kept spec after the bundle changed.
func (m *Manager) forgetSpec(c *ctr) {
	c.mu.Lock()
	c.spec = nil
	c.mu.Unlock()
}
