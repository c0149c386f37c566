package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Run creates a pod sandbox and returns its ID. A pod whose name (from its
// metadata) is taken gets AlreadyExists, except kubelet's retry of an
// identical request after its own timeout: that waits for the first call
// and gets its result. A failed Run leaves nothing behind.
func (m *Manager) Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	if err := validate(cfg); err != nil {
		return "", err
	}
	if sharesPID(cfg) && m.cfg.Init == nil {
		return "", errdefs.New(errdefs.ErrUnimplemented, "pods sharing one PID namespace need an init process, and no init runner is configured")
	}
	if !isHost(cfg, netMode) && m.cfg.CNI == nil {
		return "", errdefs.WithKind(errdefs.ErrFailedPrecondition, errNoNetwork)
	}
	digest, err := configDigest(cfg, handler)
	if err != nil {
		return "", errdefs.WithKind(errdefs.ErrInvalidArgument, err)
	}
	name := podName(cfg.GetMetadata())
	start := time.Now()

	m.mu.Lock()
	if p, ok := m.names[name]; ok && p.recovering {
		// A pod of this name from before a restart: once reconciled it is
		// either kept (the retry joins it) or undone (the name is free).
		m.mu.Unlock()
		if err := waitRecovered(ctx, p); err != nil {
			return "", err
		}
		m.mu.Lock()
	}
	if p, ok := m.names[name]; ok {
		m.mu.Unlock()
		return m.joinRetry(ctx, p, name, digest)
	}
	p := &pod{id: newID(), name: name, digest: digest, cfg: proto.Clone(cfg).(*runtimeapi.PodSandboxConfig), done: make(chan struct{})}
	m.names[name], m.byID[p.id] = p, p
	m.mu.Unlock()

	// The work outlives the caller's deadline: kubelet gives up after its
	// own timeout and retries, and the retry should find the pod finished
	// rather than start over.
	go m.runCreate(context.WithoutCancel(ctx), p, handler, start)
	return m.wait(ctx, p)
}

// createTimeout bounds a Run once it no longer follows its caller's
// deadline.
const createTimeout = 5 * time.Minute

func (m *Manager) runCreate(ctx context.Context, p *pod, handler string, start time.Time) {
	ctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	err := m.create(ctx, p, handler)
	if err != nil {
		err = m.undoCreate(p, err)
	} else {
		m.cfg.Observer.PodReady(time.Since(start))
		m.emitRun(p)
	}
	p.runErr = err
	close(p.done)
}

// wait returns the result of the Run that creates p, or ctx's error if the
// caller stops waiting first.
func (m *Manager) wait(ctx context.Context, p *pod) (string, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		// ctx's error keeps its own kind (DeadlineExceeded or Canceled).
		return "", fmt.Errorf("pod sandbox %s is still being created; retry to get the result: %w", p.name, ctx.Err())
	}
	if p.runErr != nil {
		return "", p.runErr
	}
	return p.id, nil
}

// joinRetry answers a Run for a name that is taken.
func (m *Manager) joinRetry(ctx context.Context, p *pod, name, digest string) (string, error) {
	if p.digest != digest {
		return "", errdefs.AlreadyExists("pod sandbox %s already exists (%s) with a different config", name, p.id)
	}
	if m.onJoin != nil {
		m.onJoin()
	}
	id, err := m.wait(ctx, p)
	if err != nil {
		return "", err
	}
	if v := p.view.Load(); v.State != Ready {
		return "", errdefs.AlreadyExists("pod sandbox %s already exists (%s) and is %s", name, p.id, v.State)
	}
	return id, nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func sysctlIsNet(k string) bool {
	return len(k) > 4 && (k[:4] == "net." || k[:4] == "net/")
}

// podNet is what CNI learns about p; withPorts for ADD (DEL repeats the
// ADD's cached arguments).
func (m *Manager) podNet(p *pod, withPorts bool) cni.PodNet {
	md := p.cfg.GetMetadata()
	pn := cni.PodNet{ID: p.id, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), NetnsPath: m.nsPath(p.id, "net")}
	if !withPorts {
		return pn
	}
	for _, pm := range p.cfg.GetPortMappings() {
		pn.PortMappings = append(pn.PortMappings, cni.PortMapping{
			HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(),
			Protocol: pm.GetProtocol().String(), HostIP: pm.GetHostIp(),
		})
	}
	if d := p.cfg.GetDnsConfig(); d != nil {
		pn.DNS = &cni.DNS{Servers: d.GetServers(), Searches: d.GetSearches(), Options: d.GetOptions()}
	}
	pn.Bandwidth, _ = bandwidthOf(p.cfg) // validated before Run
	return pn
}

// undoCreate tears down a failed Run. If the teardown fails too, the pod
// stays, NOTREADY, so that kubelet sees it and removes it (retrying the
// teardown) instead of it leaking silently.
func (m *Manager) undoCreate(p *pod, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	if err := m.teardown(ctx, p); err != nil {
		return m.keepFailed(p, fmt.Errorf("%w; undoing it failed, the pod is left NOTREADY for removal: %v", cause, err))
	}
	if err := m.erase(p); err != nil {
		return m.keepFailed(p, fmt.Errorf("%w; removing its files failed, the pod is left NOTREADY for removal: %v", cause, err))
	}
	m.forget(p)
	return cause
}

func (m *Manager) keepFailed(p *pod, err error) error {
	p.rec.State = NotReady
	if serr := m.save(p); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

// undoTimeout bounds teardown work that must not inherit a caller's
// (possibly expired) deadline.
const undoTimeout = 60 * time.Second

// erase removes p's files: its state dir and then its record. Callers have
// torn p down and hold p.mu. The removal is not fsynced: a record that a
// power loss brings back names a pod whose namespaces are gone, which
// start-up tears down again (idempotently) and lists NOTREADY for kubelet
// to remove.
func (m *Manager) erase(p *pod) error {
	if err := os.RemoveAll(m.podDir(p.id)); err != nil {
		return fmt.Errorf("remove pod dir: %w", err)
	}
	crashpoint.Hit(crashpoint.RemovePodFiles)
	if err := os.Remove(m.recordPath(p.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove pod record: %w", err)
	}
	return nil
}

func (m *Manager) forget(p *pod) {
	p.removed = true
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID[p.id] == p {
		delete(m.byID, p.id)
	}
	if m.names[p.name] == p {
		delete(m.names, p.name)
	}
	m.gen.Add(1)
}
