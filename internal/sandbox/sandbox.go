// Package sandbox runs pod sandboxes: the namespaces, files and network a
// pod's containers share. A pod owns no process unless it shares one PID
// namespace (then Config.Init runs catatonit): its network, IPC and UTS
// namespaces are pinned by bind mounts (internal/netns), and CNI
// (internal/cni) attaches the network namespace.
//
// On disk, each pod has
//
//	<root>/pods/<id>.json   the durable record (survives reboots)
//	<state>/pods/<id>/      ns/ pins, hostname, resolv.conf, hosts, shm/ (tmpfs),
//	                        init/ (OCI bundle of the init, if the pod has one)
//
// The record lives under root because the state dir is a tmpfs: after a
// reboot the namespaces and mounts are gone, but a record of the CNI
// attachment is still needed to run DEL and free the pod's IP, whose lease
// host-local keeps on persistent storage.
//
// Crash safety: the record is written (atomically) before every side effect
// it names, and every undo step accepts any partial state, so New can finish
// or undo whatever a crash interrupted: a pod that was being created is
// undone, a pod whose namespaces or mounts are gone is stopped.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// DefaultShmSize is the size of a pod's /dev/shm when Config gives none,
// the same as Docker's and containerd's.
const DefaultShmSize = 64 << 20

// Config configures a Manager.
type Config struct {
	Root  string // persistent: records go to <Root>/pods
	State string // tmpfs: pins and pod files go to <State>/pods
	// CNI attaches pods that do not use the host network. Nil refuses such
	// pods (FailedPrecondition).
	CNI *cni.Network
	// ShmSize is the size in bytes of each pod's /dev/shm tmpfs; 0 means
	// DefaultShmSize. SetShmSize changes it for pods created afterwards.
	ShmSize int64
	// DefaultHandler names the handler a pod without a RuntimeClass runs
	// on, asked once per pod at its creation and recorded with it: the
	// pod and its containers stay on that handler when a reload changes
	// the default. Nil records nothing (the pod follows the default).
	DefaultHandler func() string
	// HostResolvConf is copied into pods without a DNS config;
	// "" means /etc/resolv.conf.
	HostResolvConf string
	// HostHosts is the hosts file of host-network pods; "" means /etc/hosts.
	HostHosts string
	// StopContainers stops every container of a pod before Stop tears the
	// pod down; nil while containers do not exist yet.
	StopContainers func(ctx context.Context, id string) error
	// Init runs the init process of pods that share one PID namespace;
	// nil refuses such pods (Unimplemented).
	Init InitRunner
	// Node feeds the init's spec; required with Init.
	Node *spec.Node
	// InitPath is catatonit; "" means spec.DefaultInitPath.
	InitPath string
	// Events, if set, hears of every lifecycle change once it is
	// recorded: see events.go.
	Events EventFunc
	// NRI, if set, tells NRI plugins (internal/nri, wired by the daemon) of
	// each pod's Run, Stop and Remove.
	NRI PodHooks
	// BeforeStep, if set, runs before each step of Run, the record's
	// first, and an error fails the step: other packages' tests use it to
	// drive Run with no side effect (the CRI fuzz targets). The daemon
	// leaves it nil.
	BeforeStep func(step string) error
	// Observer, if set, hears of pod starts and recovery (metrics).
	Observer Observer
}

// Observer hears what pods do. Its methods must return at once.
type Observer interface {
	// PodReady observes the time from a Run's start to its pod being READY.
	PodReady(took time.Duration)
	// Recovered counts one pod reconciled after a start, kind "pod";
	// result is ok, failed, set_aside or orphan_removed.
	Recovered(kind, result string)
}

type noObserver struct{}

func (noObserver) PodReady(time.Duration)   {}
func (noObserver) Recovered(string, string) {}

// PodHooks hear of a pod's lifecycle for NRI plugins. RunPodSandbox runs
// once every step is done and before the pod is READY or listed: its error
// fails and undoes the Run. StopPodSandbox runs once, when a READY pod's
// containers are stopped and before its network goes; RemovePodSandbox
// after the pod is gone. Errors of those two are the hook's to log.
type PodHooks interface {
	RunPodSandbox(ctx context.Context, s Sandbox) error
	StopPodSandbox(ctx context.Context, s Sandbox)
	RemovePodSandbox(ctx context.Context, s Sandbox)
}

// State is a pod's lifecycle state.
type State string

const (
	// Creating is internal: a Run in progress, invisible to List and Get.
	Creating State = "creating"
	Ready    State = "ready"
	NotReady State = "notready"
)

// CRI returns the CRI enum of s.
func (s State) CRI() runtimeapi.PodSandboxState {
	if s == Ready {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// Sandbox is a snapshot of one pod. Its fields are copies; changing them
// changes nothing.
type Sandbox struct {
	ID      string
	Name    string // the unique k8s_POD_<name>_<namespace>_<uid>_<attempt> key
	Config  *runtimeapi.PodSandboxConfig
	Handler string // the RuntimeClass handler asked for; "" = the default
	// Runtime is the handler its processes run on: Handler, or the default
	// at its creation; "" only for pods from before it was recorded.
	Runtime   string
	State     State
	CreatedAt time.Time
	// IPs are the pod's addresses, IPv4 first; the first is the primary IP.
	// Empty for host-network pods.
	IPs []netip.Addr
	// Network is the CNI result, nil for host-network pods.
	Network *cni.Result
	// Paths of the pinned namespaces; "" when the pod uses the host's.
	NetNS, IPCNS, UTSNS, UserNS string
	// PIDNS is the shared PID namespace (/proc/<init pid>/ns/pid) of a pod
	// with an init process, "" otherwise. A sandboxed pod's is a name, not
	// a host namespace (see publish).
	PIDNS string
	// Sandboxed: the pod runs on a sandboxed runtime, in the sandbox its
	// sandbox container (ID = the pod's) made.
	Sandboxed bool
	// SandboxCgroup is the cgroup the sandbox is charged to (its sandbox
	// container's cgroupsPath), "" when not sandboxed or not started.
	SandboxCgroup string
	// Per-pod files for containers to bind-mount; Shm is "" with host IPC.
	Hostname, ResolvConf, Hosts, Shm string
	// Resources kubelet last reported for the pod; nil if never. Shared:
	// read-only.
	Resources *PodResources

	// Version changes whenever the view does, and no two versions of the
	// manager's pods are equal: a cache of what the pod answers (the CRI
	// layer's encoded list items) is fresh while it holds.
	Version uint64
}

// Metadata, Labels and Annotations come from the pod's config.
func (s *Sandbox) Metadata() *runtimeapi.PodSandboxMetadata { return s.Config.GetMetadata() }
func (s *Sandbox) Labels() map[string]string                { return s.Config.GetLabels() }
func (s *Sandbox) Annotations() map[string]string           { return s.Config.GetAnnotations() }

// Manager runs the pod sandboxes of one root/state pair. It is safe for
// concurrent use: operations on different pods run in parallel; List,
// Get and Status answer from memory without waiting for them.
type Manager struct {
	cfg     Config
	shmSize *atomic.Int64 // cfg.ShmSize as SetShmSize last set it
	recDir  string        // <root>/pods
	podsDir string        // <state>/pods

	// gen counts changes List could show; see Generation.
	gen atomic.Uint64

	mu    sync.Mutex
	byID  map[string]*pod
	names map[string]*pod // unique name → pod, including pods being created

	// recovery counts the reconciliation jobs New started (recover.go).
	recovery sync.WaitGroup

	// beforeStep, when set (tests), runs before each step of Run and can
	// fail it.
	beforeStep func(step string) error
	// onJoin, when set (tests), runs when a retry starts waiting for the
	// Run it repeats.
	onJoin func()
}

// New opens the records under cfg.Root and starts reconciling them with
// the host in the background: see recover.go.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	for name, d := range map[string]string{"root": cfg.Root, "state": cfg.State} {
		if d == "" || !filepath.IsAbs(d) || filepath.Clean(d) != d {
			return nil, errdefs.InvalidArgument("sandbox %s dir %q must be a clean absolute path", name, d)
		}
	}
	if cfg.Init != nil && cfg.Node == nil {
		return nil, errdefs.InvalidArgument("sandbox: an init runner needs node facts (Config.Node)")
	}
	if cfg.ShmSize < 0 {
		return nil, errdefs.InvalidArgument("sandbox shm size %d is negative", cfg.ShmSize)
	}
	if cfg.ShmSize == 0 {
		cfg.ShmSize = DefaultShmSize
	}
	var shm atomic.Int64
	shm.Store(cfg.ShmSize)
	if cfg.HostResolvConf == "" {
		cfg.HostResolvConf = "/etc/resolv.conf"
	}
	if cfg.HostHosts == "" {
		cfg.HostHosts = "/etc/hosts"
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	m := &Manager{
		cfg:     cfg,
		shmSize: &shm,
		recDir:  filepath.Join(cfg.Root, "pods"),
		podsDir: filepath.Join(cfg.State, "pods"),
		byID:    map[string]*pod{},
		names:   map[string]*pod{},
		// Tests in this package set beforeStep themselves.
		beforeStep: cfg.BeforeStep,
	}
	for _, d := range []string{m.recDir, m.podsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := m.recover(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Get returns the pod with id (or a unique prefix of it).
func (m *Manager) Get(id string) (Sandbox, error) {
	p, err := m.lookup(id)
	if err != nil {
		return Sandbox{}, err
	}
	return p.snapshot(), nil
}

// Status is Get; it exists to mirror the CRI call.
func (m *Manager) Status(id string) (Sandbox, error) { return m.Get(id) }

// lookup finds a visible (not being created) pod by ID or unique prefix.
func (m *Manager) lookup(id string) (*pod, error) {
	if id == "" {
		return nil, errdefs.InvalidArgument("pod sandbox ID is empty")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.byID[id]; ok && p.visible() {
		return p, nil
	}
	var found *pod
	for full, p := range m.byID {
		if len(full) > len(id) && full[:len(id)] == id && p.visible() {
			if found != nil {
				return nil, errdefs.InvalidArgument("pod sandbox ID prefix %q is ambiguous", id)
			}
			found = p
		}
	}
	if found == nil {
		return nil, errdefs.NotFound("pod sandbox %q not found", id)
	}
	return found, nil
}

var errNoNetwork = errors.New("no CNI network configured")

// SetShmSize sets the /dev/shm size of pods created from now on; running
// pods keep theirs.
func (m *Manager) SetShmSize(bytes int64) error {
	if bytes <= 0 {
		return errdefs.InvalidArgument("sandbox shm size %d must be positive", bytes)
	}
	m.shmSize.Store(bytes)
	return nil
}
