// Package container keeps the containers of pods: their durable records,
// their state machine (created → running → exited → removed) and the steps
// that take a CRI ContainerConfig to a process under conmon and runc.
//
// On disk, each container has
//
//	<root>/containers/<id>/record.json   durable record (atomic: tmp, fsync, rename)
//	<root>/containers/<id>/upper, work   the overlay's writable layer
//	<root>/containers/<id>/l/<n>         short symlinks to the image's layer dirs
//	<state>/containers/<id>/             OCI bundle: config.json, rootfs (overlay mount point)
//
// Crash safety: Create writes the record in state "creating" before its first
// side effect, and every undo step accepts any partial state (a mount that is
// not there, a runtime that never heard of the container), so New can undo a
// create that a crash interrupted without knowing how far it got. Remove
// writes state "removing" first, so New finishes it. Layer references live
// only in memory: New takes them again for every container it keeps.
//
// The package does not know gRPC; the cri package maps Container to CRI
// messages and errdefs kinds to codes.
package container

import (
	"context"
	"errors"
	"fmt"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// SandboxInfo is what a container needs from its pod.
type SandboxInfo struct {
	ID             string
	Config         *runtimeapi.PodSandboxConfig
	Namespaces     spec.SandboxNamespaces
	Files          spec.SandboxFiles
	CgroupParent   string
	RuntimeHandler string
	Ready          bool
}

// Sandboxes looks pods up; the sandbox package implements it. Sandbox fails
// with ErrNotFound for an unknown pod.
type Sandboxes interface {
	Sandbox(id string) (SandboxInfo, error)
}

// Config configures a Manager.
type Config struct {
	Root  string // persistent: records and writable layers under <Root>/containers
	State string // tmpfs: bundles and rootfs mounts under <State>/containers
	// Layers and Images are the image store; a container holds references
	// on its image's layers so removing the image cannot pull them away.
	Layers *layer.Store
	Images *image.Service
	// Runtimes are the handlers in force (a reload swaps them); a pod
	// without a handler uses their default.
	Runtimes  *handlers.Set
	Node      *spec.Node
	Sandboxes Sandboxes
	Log       *slog.Logger
	// Events, if set, hears of every lifecycle change once it is recorded:
	// see events.go.
	Events EventFunc
	// Observer, if set, hears of starts, exits and recovery (metrics).
	Observer Observer
	// NRI, if set, tells NRI plugins of every lifecycle step (nri.go).
	NRI NRIHooks
}

// Observer hears what containers do. Its methods must return at once.
type Observer interface {
	// ContainerStarted counts a start on the runtime handler's runtime.
	ContainerStarted(handler string)
	// ContainerExited counts a recorded exit; reason is Completed, Error
	// or OOMKilled.
	ContainerExited(reason string)
	// Recovered counts one container reconciled after a start, kind
	// "container"; result is ok, failed, set_aside or orphan_removed.
	Recovered(kind, result string)
}

type noObserver struct{}

func (noObserver) ContainerStarted(string)  {}
func (noObserver) ContainerExited(string)   {}
func (noObserver) Recovered(string, string) {}

// Manager owns every container of the daemon. Its methods are safe for
// concurrent use; operations on one container are serialised, operations on
// different containers run in parallel.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu         sync.RWMutex
	containers map[string]*ctr
	names      map[string]*reservation // by sandbox ID + "/" + name
	gates      sandboxGates

	ctx    context.Context // cancelled by Close: ends the exit watchers and recovery
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// recovery counts the reconciliation jobs New started (recover.go).
	recovery sync.WaitGroup

	// hook, when set by tests, runs before each create step; an error fails
	// the step, and errCrash makes Create return without undoing anything,
	// as if the daemon had died there.
	hook func(step string) error

	usage usageCache // FsUsage

	// gen counts changes to the containers List shows (a record changed,
	// a container added or dropped); see Generation.
	gen atomic.Uint64
}

// Generation changes after every change List could show. Read it before
// listing: a list taken after Generation returned g shows every change
// made before g, so what was built from it is stale once Generation
// differs from g. The CRI layer caches encoded list responses on it.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

// changed ends a change, once it is visible to List and Status.
func (m *Manager) changed() { m.gen.Add(1) }

var errCrash = errors.New("simulated crash")

// New checks the configuration and loads the containers recorded under
// Root; every kept container holds its layers again before it returns.
// The rest of the recovery runs in the background (recover.go): creates and
// removals a crash interrupted are undone or finished, exits that happened
// while the daemon was down are recorded, running containers are watched
// again. Call it after the image service has re-acquired its own layers and
// before the layer store's Prune.
func New(cfg Config) (*Manager, error) {
	switch {
	case cfg.Root == "" || !filepath.IsAbs(cfg.Root), cfg.State == "" || !filepath.IsAbs(cfg.State):
		return nil, errdefs.InvalidArgument("container manager: root and state must be absolute paths")
	case cfg.Layers == nil || cfg.Images == nil || cfg.Node == nil || cfg.Sandboxes == nil:
		return nil, errdefs.InvalidArgument("container manager: layers, images, node and sandboxes are required")
	case cfg.Runtimes == nil || cfg.Runtimes.Runtime("") == nil:
		return nil, errdefs.InvalidArgument("container manager: no runtime for the default handler")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	for _, d := range []string{recordRoot(cfg.Root), stateRoot(cfg.State)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("container manager: %w", err)
		}
	}
	m := &Manager{
		cfg:        cfg,
		log:        cfg.Log.With("component", "container"),
		containers: map[string]*ctr{},
		names:      map[string]*reservation{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	if err := m.recover(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Close stops watching exits. Containers keep running; a new Manager over
// the same directories picks them up. Layer references stay taken.
func (m *Manager) Close() error {
	m.cancel()
	m.recovery.Wait()
	m.wg.Wait()
	return nil
}

func recordRoot(root string) string     { return filepath.Join(root, "containers") }
func stateRoot(state string) string     { return filepath.Join(state, "containers") }
func (m *Manager) dir(id string) string { return filepath.Join(recordRoot(m.cfg.Root), id) }

// bundle is the OCI bundle; the rootfs is mounted inside it.
func (m *Manager) bundle(id string) string { return filepath.Join(stateRoot(m.cfg.State), id) }
func (m *Manager) rootfs(id string) string { return filepath.Join(m.bundle(id), "rootfs") }

// handlerName is the handler a container runs on: "" is the default one.
func (m *Manager) handlerName(handler string) string {
	if handler == "" {
		return m.cfg.Runtimes.Default()
	}
	return handler
}

func (m *Manager) runtime(handler string) (*oci.Runtime, error) {
	rt := m.cfg.Runtimes.Runtime(handler)
	if rt == nil {
		if handler == "" {
			handler = m.cfg.Runtimes.Default()
		}
		return nil, errdefs.FailedPrecondition("no runtime configured for handler %q", handler)
	}
	return rt, nil
}

func (m *Manager) get(id string) (*ctr, error) {
	m.mu.RLock()
	c := m.containers[id]
	m.mu.RUnlock()
	if c == nil {
		return nil, errdefs.NotFound("container %q not found", id)
	}
	return c, nil
}
