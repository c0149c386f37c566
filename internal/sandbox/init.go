package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// InitRunner runs the init process (catatonit) of a pod that shares one PID
// namespace; the OCI runtime package implements it. Both calls are keyed by
// the sandbox ID and name the pod's RuntimeClass handler ("" = the
// default): the init must run where the pod's containers will, so that
// they can join its PID namespace.
type InitRunner interface {
	// Start creates and starts the init from the OCI bundle at bundle
	// (config.json is spec, written there already) and returns its PID.
	Start(ctx context.Context, handler, id, bundle string, spec *specs.Spec) (pid int, err error)
	// Stop kills and deletes the init. It is idempotent: an init that does
	// not exist (any more) is not an error.
	Stop(ctx context.Context, handler, id string) error
	// StopOrphan is Stop for a pod whose record is lost, so its handler is
	// unknown: it stops an init of that ID on any handler.
	StopOrphan(ctx context.Context, id string) error
	// Sandboxed says whether handler ("" = the default) runs each pod in
	// one sandbox (gVisor, Kata): its pods get the init whatever their PID
	// mode, as the sandbox container the pod's containers join.
	Sandboxed(handler string) bool
}

func sharesPID(cfg *runtimeapi.PodSandboxConfig) bool {
	return cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_POD
}

func (m *Manager) initBundle(id string) string { return filepath.Join(m.podDir(id), "init") }

// startInit builds the init's bundle (an empty read-only root: the init
// needs no files) and starts it. The caller has recorded the intent.
func (m *Manager) startInit(ctx context.Context, p *pod, v *Sandbox) (int, error) {
	bundle := m.initBundle(p.id)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return 0, fmt.Errorf("pod init bundle: %w", err)
	}
	if err := chownForUserns(rootfs, podUserns(p.cfg)); err != nil {
		return 0, err
	}
	s, err := spec.BuildSandbox(spec.SandboxInput{
		ID: p.id, Config: p.cfg, RootfsPath: rootfs, InitPath: m.cfg.InitPath, Node: m.cfg.Node, Sandboxed: p.rec.Sandboxed,
		Namespaces: spec.SandboxNamespaces{Network: v.NetNS, IPC: v.IPCNS, UTS: v.UTSNS, User: v.UserNS},
	})
	if err != nil {
		return 0, fmt.Errorf("pod init spec: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return 0, fmt.Errorf("pod init spec: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(bundle, "config.json"), b, 0o600, false); err != nil {
		return 0, fmt.Errorf("pod init bundle: %w", err)
	}
	if s.Linux != nil {
		p.rec.SandboxCgroup = s.Linux.CgroupsPath
	}
	pid, err := m.cfg.Init.Start(ctx, p.rec.runtime(), p.id, bundle, s)
	if err != nil {
		return 0, fmt.Errorf("start pod init: %w", err)
	}
	return pid, nil
}

// stopInit stops the init while the record says one may run.
func (m *Manager) stopInit(ctx context.Context, p *pod) error {
	if !p.rec.InitStarted {
		return nil
	}
	if m.cfg.Init == nil {
		return errdefs.FailedPrecondition("pod %s has an init process but no init runner is configured to stop it", p.id)
	}
	if err := m.cfg.Init.Stop(ctx, p.rec.runtime(), p.id); err != nil {
		return fmt.Errorf("stop pod init: %w", err)
	}
	p.rec.InitStarted, p.rec.InitPID = false, 0
	return m.saveTeardown(p)
}
