package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/netns"
)

// A step of Run. Each runs after the record that names it is saved; undo
// (and recovery after a crash) tears all of them down whether or not they
// ran, so only steps whose undo is costly keep their own intent flag in the
// record (CNI, the init process).
type step struct {
	name string
	do   func(m *Manager, ctx context.Context, p *pod, v *Sandbox) error
}

// Step names; tests hook them.
const (
	stepRecord     = "record"
	stepNamespaces = "namespaces"
	stepHostname   = "hostname"
	stepResolv     = "resolv.conf"
	stepShm        = "shm"
	stepSysctls    = "sysctls"
	stepNetwork    = "network"
	stepHosts      = "hosts"
	stepInit       = "init"
	stepReady      = "ready"
)

var steps = []step{
	{stepNamespaces, (*Manager).pinNamespaces},
	{stepHostname, (*Manager).setHostname},
	{stepResolv, (*Manager).writeResolvConf},
	{stepShm, (*Manager).mountShm},
	{stepSysctls, (*Manager).setSysctls},
	{stepNetwork, (*Manager).attachNetwork},
	{stepHosts, (*Manager).writeHosts},
	{stepInit, (*Manager).runInit},
}

// crashAfter names the crash point right after a step's side effect.
var crashAfter = map[string]string{
	stepNamespaces: crashpoint.RunNamespaces,
	stepResolv:     crashpoint.RunFiles,
	stepShm:        crashpoint.RunShm,
	stepNetwork:    crashpoint.RunNetAttached,
	stepInit:       crashpoint.RunInitStarted,
}

func (m *Manager) hook(name string) error {
	if m.beforeStep != nil {
		return m.beforeStep(name)
	}
	return nil
}

// create saves the record in state Creating, runs the steps, and marks the
// pod READY.
func (m *Manager) create(ctx context.Context, p *pod, handler string) error {
	cfgJSON, err := protojson.Marshal(p.cfg)
	if err != nil {
		return fmt.Errorf("encode pod config: %w", err)
	}
	p.rec = record{
		Version: recordVersion, ID: p.id, Name: p.name, Config: cfgJSON, Digest: p.digest,
		Handler: handler, Runtime: m.runtimeOf(handler), CreatedAt: time.Now().UTC(), State: Creating,
	}
	// Recorded, not looked up: a handler reconfigured later must not change
	// what this pod is.
	p.rec.Sandboxed = m.cfg.Init != nil && m.cfg.Init.Sandboxed(p.rec.runtime())
	if err := m.hook(stepRecord); err != nil {
		return err
	}
	// Until the network step, every side effect lives under the state dir.
	if err := m.note(p); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RunRecorded)
	v := p.view.Load()
	// Step timings go to the debug log: where a slow pod start spends its
	// time (CNI, usually) is the first thing an operator asks.
	took := make([]any, 0, 2*len(steps)+2)
	for _, s := range steps {
		if err := m.hook(s.name); err != nil {
			return err
		}
		t := time.Now()
		if err := s.do(m, ctx, p, v); err != nil {
			return err
		}
		took = append(took, s.name, time.Since(t))
		if cp := crashAfter[s.name]; cp != "" {
			crashpoint.Hit(cp)
		}
	}
	if err := m.hook(stepReady); err != nil {
		return err
	}
	if m.cfg.NRI != nil {
		if err := m.cfg.NRI.RunPodSandbox(ctx, p.snapshot()); err != nil {
			return err
		}
	}
	p.rec.State = Ready
	t := time.Now()
	// Noted, not fsynced: after a power loss the durable record (creating,
	// attached) makes start-up undo the pod, CNI DEL included, which leaves
	// as little behind as stopping a READY one would.
	err = m.note(p)
	if err == nil {
		crashpoint.Hit(crashpoint.RunReady)
	}
	slog.Debug("pod sandbox steps", append([]any{"id", p.id, stepReady, time.Since(t)}, took...)...)
	return err
}

func (m *Manager) pinNamespaces(_ context.Context, p *pod, v *Sandbox) error {
	if err := os.MkdirAll(m.podDir(p.id), 0o755); err != nil {
		return fmt.Errorf("pod dir: %w", err)
	}
	var kinds []netns.Kind
	if v.NetNS != "" {
		kinds = append(kinds, netns.Net, netns.UTS)
	}
	if v.IPCNS != "" {
		kinds = append(kinds, netns.IPC)
	}
	if u := podUserns(p.cfg); u != nil {
		return m.pinWithUserns(p, u, kinds)
	}
	if len(kinds) == 0 {
		return nil
	}
	if _, err := netns.Pin(m.nsDir(p.id), kinds...); err != nil {
		return fmt.Errorf("pin pod namespaces: %w", err)
	}
	return nil
}

// hostname is the pod's name: its own, or the host's for a pod in the
// host's UTS namespace (or one that names none).
func hostname(p *pod, v *Sandbox) (string, error) {
	if h := p.cfg.GetHostname(); h != "" && v.UTSNS != "" {
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("host name: %w", err)
	}
	return h, nil
}

func (m *Manager) setHostname(_ context.Context, p *pod, v *Sandbox) error {
	name, err := hostname(p, v)
	if err != nil {
		return err
	}
	if v.UTSNS != "" {
		if err := netns.SetHostname(v.UTSNS, name); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(v.Hostname, []byte(name+"\n"), 0o644, false); err != nil {
		return fmt.Errorf("pod hostname file: %w", err)
	}
	return nil
}

func (m *Manager) writeResolvConf(_ context.Context, p *pod, v *Sandbox) error {
	var err error
	if b := resolvConf(p.cfg.GetDnsConfig()); b != nil {
		err = writeFileAtomic(v.ResolvConf, b, 0o644, false)
	} else {
		err = copyFile(m.cfg.HostResolvConf, v.ResolvConf)
	}
	if err != nil {
		return fmt.Errorf("pod resolv.conf: %w", err)
	}
	return nil
}

func (m *Manager) mountShm(_ context.Context, _ *pod, v *Sandbox) error {
	if v.Shm == "" {
		return nil
	}
	return mountShm(v.Shm, m.shmSize.Load())
}

// setSysctls sets the network sysctls in the pod's netns. IPC sysctls are
// left to the containers' specs: the IPC namespace has no process to write
// them from, and runc sets them on create.
func (m *Manager) setSysctls(_ context.Context, p *pod, v *Sandbox) error {
	for k, val := range p.cfg.GetLinux().GetSysctls() {
		if sysctlIsNet(k) {
			if err := netns.Sysctl(v.NetNS, k, val); err != nil {
				return fmt.Errorf("pod sysctl: %w", err)
			}
		}
	}
	return nil
}

func (m *Manager) attachNetwork(ctx context.Context, p *pod, v *Sandbox) error {
	if v.NetNS == "" {
		return nil
	}
	p.rec.NetAttach = true
	if err := m.save(p); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RunNetRecorded)
	// On failure Setup has run DEL itself; undo runs it again, which is
	// harmless and covers a failed rollback.
	res, err := m.cfg.CNI.Setup(ctx, m.podNet(p, true))
	if err != nil {
		return err
	}
	p.rec.Network = res
	return m.note(p) // the Ready save follows
}

func (m *Manager) writeHosts(_ context.Context, p *pod, v *Sandbox) error {
	var err error
	if v.NetNS != "" {
		var name string
		if name, err = hostname(p, v); err == nil {
			err = writeFileAtomic(v.Hosts, hostsFile(name, p.rec.Network.PodIPs()), 0o644, false)
		}
	} else {
		err = copyFile(m.cfg.HostHosts, v.Hosts)
	}
	if err != nil {
		return fmt.Errorf("pod hosts file: %w", err)
	}
	return nil
}

func (m *Manager) runInit(ctx context.Context, p *pod, v *Sandbox) error {
	if !sharesPID(p.cfg) && !p.rec.Sandboxed {
		return nil
	}
	p.rec.InitStarted = true
	if err := m.note(p); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RunInitRecorded)
	pid, err := m.startInit(ctx, p, v)
	if err != nil {
		return err
	}
	p.rec.InitPID = pid
	return m.note(p) // the Ready save follows
}
