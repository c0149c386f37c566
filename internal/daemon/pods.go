package daemon

import (
	"context"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// podLookup answers the container manager's questions about pods from the
// sandbox manager, so neither package imports the other.
type podLookup struct{ pods *sandbox.Manager }

func (l podLookup) Sandbox(id string) (container.SandboxInfo, error) {
	sb, err := l.pods.Get(id)
	if err != nil {
		return container.SandboxInfo{}, err
	}
	return container.SandboxInfo{
		ID:     sb.ID,
		Config: sb.Config,
		Namespaces: spec.SandboxNamespaces{
			Network: sb.NetNS, IPC: sb.IPCNS, UTS: sb.UTSNS, PID: sb.PIDNS, User: sb.UserNS,
		},
		Files: spec.SandboxFiles{
			Hostname: sb.Hostname, ResolvConf: sb.ResolvConf, Hosts: sb.Hosts, ShmPath: sb.Shm,
		},
		CgroupParent: sb.Config.GetLinux().GetCgroupParent(),
		// The handler the pod runs on, so its containers join it there
		// whatever a reload does to the default.
		RuntimeHandler: sb.Runtime,
		Ready:          sb.State == sandbox.Ready,
	}, nil
}

// stopPodContainers is StopPodSandbox's first step: the CRI says a pod's
// containers are forcibly terminated, so no grace period.
func stopPodContainers(containers func() *container.Manager) func(ctx context.Context, podID string) error {
	return func(ctx context.Context, podID string) error {
		if m := containers(); m != nil {
			return m.StopSandbox(ctx, podID, 0)
		}
		return nil
	}
}
