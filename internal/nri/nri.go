// Package nri serves Node Resource Interface plugins
// (github.com/containerd/nri, its runtime-side adaptation): plugins launched
// from plugin_path or connecting to socket_path hear of every pod and
// container event, adjust a container's OCI spec before it is created, and
// may update or evict containers. The pod and container managers call the
// narrow hooks of events.go; a nil *NRI (NRI off) makes every hook a no-op.
//
// A plugin is bounded by plugin_request_timeout per request: the library
// drops a plugin that does not answer in time and the event goes on without
// it, so a hung or crashed plugin delays a pod by at most that timeout.
package nri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	nrilog "github.com/containerd/nri/pkg/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config is the [nri] table plus what the daemon knows of the host.
type Config struct {
	SocketPath          string
	PluginPath          string
	PluginConfigPath    string
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
	DisableConnections  bool

	// RuntimeVersion is cradle's version, told to plugins.
	RuntimeVersion string
	// MinOOMScoreAdj is the daemon's own oom_score_adj: without
	// CAP_SYS_RESOURCE nobody can set a lower one, so a plugin's lower
	// score is raised to it (as spec.Build does for kubelet's).
	MinOOMScoreAdj int
	// Hugetlb says the host has the hugetlb controller; without it a
	// plugin's hugepage limits are dropped (runc would fail the create).
	Hugetlb bool
	// InjectCDI applies CDI devices a plugin asks for (internal/cdi).
	InjectCDI func(*specs.Spec, []string) error
}

// Pod is what plugins learn of a pod sandbox.
type Pod struct {
	ID           string
	Config       *runtimeapi.PodSandboxConfig
	Handler      string
	NetNS        string // "" with the host network
	IPs          []string
	Pid          uint32 // the pod's init, if it has one
	CgroupParent string
}

// Container is what plugins learn of a container. Spec, when known, gives
// its args, env, mounts, hooks and Linux settings.
type Container struct {
	ID, PodID  string
	Config     *runtimeapi.ContainerConfig
	State      runtimeapi.ContainerState
	Spec       *specs.Spec
	Pid        uint32
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	Reason     string
	Message    string
}

// Domain is what NRI needs of the managers: the pods and containers for a
// plugin's synchronization, and the two actions plugins may ask for.
type Domain interface {
	Pods() []Pod
	Pod(id string) (Pod, bool)
	Containers() []Container
	// UpdateContainer applies resources a plugin asked for, without
	// telling the plugins again.
	UpdateContainer(ctx context.Context, id string, r *specs.LinuxResources) error
	// EvictContainer stops a container a plugin evicts.
	EvictContainer(ctx context.Context, id, reason string) error
}

// NRI is the running adaptation.
type NRI struct {
	cfg    Config
	log    *slog.Logger
	a      *adaptation.Adaptation
	domain Domain
	// listening: external plugins can connect on SocketPath.
	listening bool
	plugins   pluginSet

	mu sync.Mutex
	// stopped holds containers plugins already heard StopContainer for:
	// an exit and a later StopContainer or RemoveContainer tell it once.
	stopped map[string]bool
	// async tracks updates and evictions run after an event's reply.
	async sync.WaitGroup
}

// runtimeName is how cradle introduces itself to plugins.
const runtimeName = "cradle"

// setLibraryLogger routes the library's log lines to slog; the library
// keeps one logger for the process.
var setLibraryLogger sync.Once

// Start launches the plugins of plugin_path and listens on socket_path. A
// socket dir that cannot be created, or a socket another process serves,
// leaves external connections off with a warning: NRI never stops the
// daemon from starting. The error is for an adaptation that cannot run at
// all; the caller runs without NRI then.
func Start(cfg Config, d Domain, log *slog.Logger) (*NRI, error) {
	setLibraryLogger.Do(func() { nrilog.Set(libLogger{log.With("component", "nri-lib")}) })
	n := &NRI{cfg: cfg, log: log, domain: d, stopped: map[string]bool{}}
	adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	opts := []adaptation.Option{
		adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath),
		adaptation.WithSocketPath(cfg.SocketPath),
		adaptation.WithMetrics(&n.plugins),
	}
	if !cfg.DisableConnections {
		if why := n.socketProblem(); why != "" {
			log.Warn("NRI: external plugin connections are off", "socket", cfg.SocketPath, "reason", why)
			opts = append(opts, adaptation.WithDisabledExternalConnections())
		} else {
			n.listening = true
		}
	} else {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	}
	a, err := adaptation.New(runtimeName, cfg.RuntimeVersion, n.sync, n.updateFromPlugin, opts...)
	if err != nil {
		return nil, err
	}
	if err := a.Start(); err != nil {
		a.Stop()
		return nil, err
	}
	n.a = a
	pluginSets.Store(&n.plugins, struct{}{})
	return n, nil
}

// socketProblem says why cradle should not listen on the socket path: its
// dir cannot be made, or a live socket is there (another runtime's NRI).
// A stale socket is replaced, as the library does.
func (n *NRI) socketProblem() string {
	if err := os.MkdirAll(filepath.Dir(n.cfg.SocketPath), 0o700); err != nil {
		return fmt.Sprintf("cannot create its directory: %v", err)
	}
	if _, err := os.Stat(n.cfg.SocketPath); err != nil {
		return ""
	}
	c, err := net.DialTimeout("unix", n.cfg.SocketPath, time.Second)
	if err != nil {
		return ""
	}
	c.Close()
	return "another process serves it"
}

// Listening says whether external plugins can connect on the socket.
func (n *NRI) Listening() bool { return n != nil && n.listening }

// Stop closes the plugin connections and stops the launched plugins.
func (n *NRI) Stop() {
	if n == nil {
		return
	}
	n.a.Stop()
	n.async.Wait()
	pluginSets.Delete(&n.plugins)
}

// Plugins names the plugins connected and synchronized, sorted.
func (n *NRI) Plugins() []string {
	if n == nil {
		return nil
	}
	return n.plugins.names()
}

// sync hands a connecting plugin the pods and containers that exist. It
// runs while the library blocks CreateContainer events (see BlockSync),
// so a container is either in the snapshot or reaches the plugin as an
// event once the plugin is registered.
func (n *NRI) sync(ctx context.Context, cb adaptation.SyncCB) error {
	var pods []*adaptation.PodSandbox
	for _, p := range n.domain.Pods() {
		pods = append(pods, podSandbox(p))
	}
	var ctrs []*adaptation.Container
	for _, c := range n.domain.Containers() {
		ctrs = append(ctrs, container(c))
	}
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	n.later(updates, nil)
	return nil
}

// updateFromPlugin applies a plugin's unsolicited updates; it returns the
// ones that failed.
func (n *NRI) updateFromPlugin(ctx context.Context, updates []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	var failed []*adaptation.ContainerUpdate
	for _, u := range updates {
		if err := n.apply(ctx, u); err != nil {
			n.log.Warn("NRI: container update failed", "id", u.GetContainerId(), "err", err)
			if !u.GetIgnoreFailure() {
				failed = append(failed, u)
			}
		}
	}
	return failed, nil
}

func (n *NRI) apply(ctx context.Context, u *adaptation.ContainerUpdate) error {
	r := u.GetLinux().GetResources()
	if r == nil {
		return nil
	}
	return n.domain.UpdateContainer(ctx, u.GetContainerId(), r.ToOCI())
}

// later runs updates and evictions a plugin returned with an event, after
// the event: they touch other containers, whose operations may be waiting
// for this one.
func (n *NRI) later(updates []*adaptation.ContainerUpdate, evictions []*adaptation.ContainerEviction) {
	if len(updates) == 0 && len(evictions) == 0 {
		return
	}
	n.async.Add(1)
	go func() {
		defer n.async.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, u := range updates {
			if err := n.apply(ctx, u); err != nil {
				n.log.Warn("NRI: container update failed", "id", u.GetContainerId(), "err", err)
			}
		}
		for _, e := range evictions {
			n.log.Info("NRI: plugin evicts container", "id", e.GetContainerId(), "reason", e.GetReason())
			if err := n.domain.EvictContainer(ctx, e.GetContainerId(), e.GetReason()); err != nil {
				n.log.Warn("NRI: eviction failed", "id", e.GetContainerId(), "err", err)
			}
		}
	}()
}

// pluginSet learns the connected plugins from the library's metrics: a
// plugin counts from its first successful Synchronize until a request to
// it fails for good, its connection closes (connectionClosed) or the count
// of plugins drops to zero.
type pluginSet struct {
	mu  sync.Mutex
	set map[string]bool
}

func (s *pluginSet) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.set))
	for name := range s.set {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (s *pluginSet) RecordPluginInvocation(name, op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]bool{}
	}
	switch {
	case err == nil && op == "Synchronize":
		s.set[name] = true
	case err != nil && dropsPlugin(err):
		delete(s.set, name)
	}
}

// dropsPlugin: the library closes a plugin that times out or whose
// connection breaks; an error the plugin returns keeps it.
func dropsPlugin(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"deadline exceeded", "closed", "broken pipe", "connection reset", "EOF"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (s *pluginSet) remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.set, name)
}

func (s *pluginSet) RecordPluginLatency(string, string, time.Duration) {}
func (s *pluginSet) RecordPluginAdjustments(string, string, *adaptation.ContainerAdjustment, int, int) {
}

func (s *pluginSet) UpdatePluginCount(count int) {
	if count != 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.set)
}

// connectionClosed is the library's log line for a plugin whose
// connection closed; it is the only word of a plugin that goes away while
// no request runs (TestPluginListFollowsConnections keeps it true).
const connectionClosed = "connection to plugin %q closed"

// pluginSets are the running adaptations' plugin lists: the library's
// logger is one for the process.
var pluginSets sync.Map // *pluginSet → struct{}

// libLogger puts the library's printf-style lines into slog.
type libLogger struct{ l *slog.Logger }

func (g libLogger) Debugf(_ context.Context, f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...)) }
func (g libLogger) Infof(_ context.Context, f string, a ...any) {
	if f == connectionClosed && len(a) == 1 {
		if name, ok := a[0].(string); ok {
			pluginSets.Range(func(k, _ any) bool {
				k.(*pluginSet).remove(name)
				return true
			})
		}
	}
	g.l.Info(fmt.Sprintf(f, a...))
}
func (g libLogger) Warnf(_ context.Context, f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...)) }
func (g libLogger) Errorf(_ context.Context, f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...)) }
