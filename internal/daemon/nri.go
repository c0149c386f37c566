package daemon

import (
	"context"
	"log/slog"
	"sync/atomic"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cdi"
	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/cri"
	"github.com/cradle-runtime/cradle/internal/nri"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/spec"
	"github.com/cradle-runtime/cradle/internal/version"
)

// nriBridge connects internal/nri with the pod and container managers in
// both directions: it is their hooks (sandbox.PodHooks,
// container.NRIHooks) and NRI's Domain. The managers exist before NRI
// starts (a connecting plugin is synchronized with them), so the hooks do
// nothing until start sets n, and nothing at all with NRI off.
type nriBridge struct {
	n          atomic.Pointer[nri.NRI]
	pods       *sandbox.Manager
	containers *container.Manager
	socket     string
}

// start runs NRI unless [nri] enable is false; a failure is logged and
// the daemon runs without it.
func (b *nriBridge) start(cfg config.NRIConfig, facts spec.HostFacts, devices *cdi.Registry, log *slog.Logger) {
	if !cfg.Enable {
		log.Info("NRI is disabled ([nri] enable = false)")
		return
	}
	n, err := nri.Start(nri.Config{
		SocketPath: cfg.SocketPath, PluginPath: cfg.PluginPath, PluginConfigPath: cfg.PluginConfigPath,
		RegistrationTimeout: cfg.PluginRegistrationTimeout.Std(), RequestTimeout: cfg.PluginRequestTimeout.Std(),
		DisableConnections: cfg.DisableConnections,
		RuntimeVersion:     version.Version, MinOOMScoreAdj: facts.OOMScoreAdj, Hugetlb: facts.Hugetlb,
		InjectCDI: devices.Inject,
	}, b, log.With("component", "nri"))
	if err != nil {
		log.Warn("NRI could not start; running without it", "err", err)
		return
	}
	if !cfg.DisableConnections && n.Listening() {
		b.socket = cfg.SocketPath
	}
	b.n.Store(n)
	log.Info("NRI started", "socket", b.socket, "plugin_path", cfg.PluginPath)
}

func (b *nriBridge) stop() { b.n.Load().Stop() }

func (b *nriBridge) status() cri.NRIStatus {
	n := b.n.Load()
	return cri.NRIStatus{Enabled: n != nil, Socket: b.socket, Plugins: n.Plugins()}
}

func nriPod(s sandbox.Sandbox) nri.Pod {
	p := nri.Pod{ID: s.ID, Config: s.Config, Handler: s.Handler, NetNS: s.NetNS,
		CgroupParent: s.Config.GetLinux().GetCgroupParent()}
	for _, ip := range s.IPs {
		p.IPs = append(p.IPs, ip.String())
	}
	return p
}

func nriContainer(c container.Container, s *specs.Spec) nri.Container {
	st := runtimeapi.ContainerState_CONTAINER_UNKNOWN
	switch c.State {
	case container.Creating, container.Created:
		st = runtimeapi.ContainerState_CONTAINER_CREATED
	case container.Running:
		st = runtimeapi.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		st = runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return nri.Container{ID: c.ID, PodID: c.SandboxID, Config: c.Config, State: st, Spec: s,
		CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt,
		ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message}
}

// sandbox.PodHooks

func (b *nriBridge) RunPodSandbox(ctx context.Context, s sandbox.Sandbox) error {
	return b.n.Load().RunPodSandbox(ctx, nriPod(s))
}
func (b *nriBridge) StopPodSandbox(ctx context.Context, s sandbox.Sandbox) {
	b.n.Load().StopPodSandbox(ctx, nriPod(s))
}
func (b *nriBridge) RemovePodSandbox(ctx context.Context, s sandbox.Sandbox) {
	b.n.Load().RemovePodSandbox(ctx, nriPod(s))
}

// container.NRIHooks

func (b *nriBridge) BlockSync() func() { return b.n.Load().BlockSync() }
func (b *nriBridge) Create(ctx context.Context, c container.Container, s *specs.Spec) error {
	return b.n.Load().CreateContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) PostCreate(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().PostCreateContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) Start(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().StartContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) PostStart(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().PostStartContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) Update(ctx context.Context, c container.Container, s *specs.Spec, r *specs.LinuxResources) (*specs.LinuxResources, error) {
	return b.n.Load().UpdateContainer(ctx, nriContainer(c, s), r)
}
func (b *nriBridge) PostUpdate(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().PostUpdateContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) Stop(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().StopContainer(ctx, nriContainer(c, s))
}
func (b *nriBridge) Remove(ctx context.Context, c container.Container, s *specs.Spec) {
	b.n.Load().RemoveContainer(ctx, nriContainer(c, s))
}

// nri.Domain

func (b *nriBridge) Pods() []nri.Pod {
	var out []nri.Pod
	for _, s := range b.pods.List(sandbox.Filter{}) {
		out = append(out, nriPod(s))
	}
	return out
}

func (b *nriBridge) Pod(id string) (nri.Pod, bool) {
	s, err := b.pods.Get(id)
	if err != nil {
		return nri.Pod{}, false
	}
	return nriPod(s), true
}

func (b *nriBridge) Containers() []nri.Container {
	var out []nri.Container
	for _, c := range b.containers.List(container.Filter{}) {
		out = append(out, nriContainer(c, b.containers.Spec(c.ID)))
	}
	return out
}

func (b *nriBridge) UpdateContainer(ctx context.Context, id string, r *specs.LinuxResources) error {
	return b.containers.ApplyResources(ctx, id, r)
}

func (b *nriBridge) EvictContainer(ctx context.Context, id, reason string) error {
	return b.containers.Evict(ctx, id, reason)
}
