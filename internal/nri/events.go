package nri

import (
	"context"
	"fmt"

	api "github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// The hooks below are what the pod and container managers call. Each is a
// no-op on a nil *NRI. Only the hooks before a change (RunPodSandbox,
// CreateContainer, UpdateContainer) can fail it; the others log a plugin's
// error and go on, as a stop or removal must finish.

// RunPodSandbox tells plugins of a pod about to become ready; a plugin's
// error fails the Run, which the caller undoes.
func (n *NRI) RunPodSandbox(ctx context.Context, p Pod) error {
	if n == nil {
		return nil
	}
	if err := n.a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: podSandbox(p)}); err != nil {
		return refused("RunPodSandbox", err)
	}
	return nil
}

// StopPodSandbox tells plugins of a pod whose containers are stopped and
// whose network is still in place.
func (n *NRI) StopPodSandbox(ctx context.Context, p Pod) {
	if n == nil {
		return
	}
	n.logged("StopPodSandbox", p.ID, n.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: podSandbox(p)}))
}

// RemovePodSandbox tells plugins of a removed pod.
func (n *NRI) RemovePodSandbox(ctx context.Context, p Pod) {
	if n == nil {
		return
	}
	n.logged("RemovePodSandbox", p.ID, n.a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: podSandbox(p)}))
}

// BlockSync holds back the synchronization of a connecting plugin until
// the returned func is called: a create holds it from its CreateContainer
// event until the container is listed, so a new plugin either finds the
// container in its snapshot or hears the event.
func (n *NRI) BlockSync() func() {
	if n == nil {
		return func() {}
	}
	b := n.a.BlockPluginSync()
	return b.Unblock
}

// CreateContainer lets plugins adjust c.Spec, the container's OCI spec,
// before it is written: annotations, mounts, env, hooks, devices, CDI
// devices, rlimits, OOM score, cgroups path, Linux resources and args. A
// plugin's error, or an adjustment that cannot apply, fails the create.
// Updates and evictions of other containers run after the create.
func (n *NRI) CreateContainer(ctx context.Context, c Container) error {
	if n == nil {
		return nil
	}
	rpl, err := n.a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: n.pod(c.PodID), Container: container(c)})
	if err != nil {
		return refused("CreateContainer", err)
	}
	if err := n.adjust(c.Spec, rpl.GetAdjust()); err != nil {
		return errdefs.WithKind(errdefs.ErrInvalidArgument, fmt.Errorf("NRI: apply a plugin's adjustment of container %s: %w", c.ID, err))
	}
	n.later(rpl.GetUpdate(), rpl.GetEvict())
	return nil
}

// adjust applies a plugin's adjustment to s.
func (n *NRI) adjust(s *specs.Spec, adj *api.ContainerAdjustment) error {
	if adj == nil {
		return nil
	}
	opts := []generate.GeneratorOption{generate.WithResourceChecker(n.checkResources)}
	if n.cfg.InjectCDI != nil {
		opts = append(opts, generate.WithCDIDeviceInjector(n.cfg.InjectCDI))
	}
	g := generate.SpecGenerator(specEditor{s}, opts...)
	if err := g.Adjust(adj); err != nil {
		return err
	}
	// The kernel refuses a score below the daemon's own (no
	// CAP_SYS_RESOURCE), and runc would fail the create.
	if p := s.Process; p != nil && p.OOMScoreAdj != nil && *p.OOMScoreAdj < n.cfg.MinOOMScoreAdj {
		n.log.Info("NRI: oom_score_adj raised to the daemon's own", "want", *p.OOMScoreAdj, "set", n.cfg.MinOOMScoreAdj)
		adj := n.cfg.MinOOMScoreAdj
		p.OOMScoreAdj = &adj
	}
	return nil
}

// checkResources keeps what the host can do: hugepage limits need the
// hugetlb controller.
func (n *NRI) checkResources(r *specs.LinuxResources) error {
	if r != nil && len(r.HugepageLimits) > 0 && !n.cfg.Hugetlb {
		n.log.Warn("NRI: hugepage limits dropped: the host has no hugetlb cgroup controller", "limits", r.HugepageLimits)
		r.HugepageLimits = nil
	}
	return nil
}

// PostCreateContainer tells plugins a container was created.
func (n *NRI) PostCreateContainer(ctx context.Context, c Container) {
	if n == nil {
		return
	}
	n.logged("PostCreateContainer", c.ID, n.a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: n.pod(c.PodID), Container: container(c)}))
}

// StartContainer tells plugins a container is about to start.
func (n *NRI) StartContainer(ctx context.Context, c Container) {
	if n == nil {
		return
	}
	n.logged("StartContainer", c.ID, n.a.StartContainer(ctx, &api.StartContainerRequest{Pod: n.pod(c.PodID), Container: container(c)}))
}

// PostStartContainer tells plugins a container started.
func (n *NRI) PostStartContainer(ctx context.Context, c Container) {
	if n == nil {
		return
	}
	n.logged("PostStartContainer", c.ID, n.a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: n.pod(c.PodID), Container: container(c)}))
}

// UpdateContainer lets plugins adjust resources kubelet asks for; it
// returns the resources to apply. Updates of other containers and
// evictions run afterwards.
func (n *NRI) UpdateContainer(ctx context.Context, c Container, r *specs.LinuxResources) (*specs.LinuxResources, error) {
	if n == nil {
		return r, nil
	}
	rpl, err := n.a.UpdateContainer(ctx, &api.UpdateContainerRequest{
		Pod: n.pod(c.PodID), Container: container(c), LinuxResources: api.FromOCILinuxResources(r, nil)})
	if err != nil {
		return nil, refused("UpdateContainer", err)
	}
	out := r
	var others []*api.ContainerUpdate
	for _, u := range rpl.GetUpdate() {
		if u.GetContainerId() != c.ID {
			others = append(others, u)
			continue
		}
		if res := u.GetLinux().GetResources(); res != nil {
			out = tieSwap(r, res.ToOCI())
			if err := n.checkResources(out); err != nil {
				return nil, err
			}
		}
	}
	n.later(others, rpl.GetEvict())
	return out, nil
}

// tieSwap keeps swap tied to a memory limit a plugin changed when the
// request tied them (kubelet's rule: no separate swap limit): a limit
// raised above the old swap would be refused by the kernel.
func tieSwap(req, out *specs.LinuxResources) *specs.LinuxResources {
	if req == nil || req.Memory == nil || out.Memory == nil || out.Memory.Limit == nil ||
		req.Memory.Limit == nil || req.Memory.Swap == nil || *req.Memory.Swap != *req.Memory.Limit ||
		out.Memory.Swap == nil || *out.Memory.Swap != *req.Memory.Swap {
		return out
	}
	limit := *out.Memory.Limit
	out.Memory.Swap = &limit
	return out
}

// PostUpdateContainer tells plugins a container's resources changed.
func (n *NRI) PostUpdateContainer(ctx context.Context, c Container) {
	if n == nil {
		return
	}
	n.logged("PostUpdateContainer", c.ID, n.a.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: n.pod(c.PodID), Container: container(c)}))
}

// StopContainer tells plugins a container stopped, by StopContainer or on
// its own; once per container.
func (n *NRI) StopContainer(ctx context.Context, c Container) {
	if n == nil || !n.firstStop(c.ID) {
		return
	}
	rpl, err := n.a.StopContainer(ctx, &api.StopContainerRequest{Pod: n.pod(c.PodID), Container: container(c)})
	n.logged("StopContainer", c.ID, err)
	n.later(rpl.GetUpdate(), nil)
}

// RemoveContainer tells plugins a container was removed.
func (n *NRI) RemoveContainer(ctx context.Context, c Container) {
	if n == nil {
		return
	}
	n.mu.Lock()
	delete(n.stopped, c.ID)
	n.mu.Unlock()
	n.logged("RemoveContainer", c.ID, n.a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: n.pod(c.PodID), Container: container(c)}))
}

func (n *NRI) firstStop(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped[id] {
		return false
	}
	n.stopped[id] = true
	return true
}

// pod is the pod of a container event; a pod already gone is sent by ID.
func (n *NRI) pod(id string) *api.PodSandbox {
	if p, ok := n.domain.Pod(id); ok {
		return podSandbox(p)
	}
	return &api.PodSandbox{Id: id}
}

func (n *NRI) logged(event, id string, err error) {
	if err != nil {
		n.log.Warn("NRI: a plugin failed an event; going on", "event", event, "id", id, "err", err)
	}
}

// refused is a plugin's error failing an event: the request was valid, a
// plugin on this node refuses it (or could not answer).
func refused(event string, err error) error {
	// %v: the plugin's error is a ttrpc status whose code (Unknown) would
	// win over the kind.
	return errdefs.WithKind(errdefs.ErrFailedPrecondition, fmt.Errorf("NRI %s: %v", event, err))
}
