// Package cri is cradle's gRPC face: it serves CRI v1 RuntimeService and
// ImageService. It is deliberately thin: check the request, translate CRI
// types into domain calls, translate results back, and map domain error kinds
// to gRPC codes (in the interceptor). Behaviour lives in the domain packages.
package cri

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"log/slog"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/criu"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/spec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Server implements runtimeapi.RuntimeServiceServer and ImageServiceServer.
// RPCs whose issue has not landed answer Unimplemented through the embedded
// types.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	// cfg is the configuration in force; a reload swaps it (SetConfig).
	cfg     atomic.Pointer[config.Loaded]
	images  *image.Service
	pods    *sandbox.Manager // nil: pod RPCs answer Unimplemented
	network *cni.Network     // nil: NetworkReady is false
	// containers nil: container RPCs answer Unimplemented.
	containers *container.Manager
	stats      *statsService // nil: stats RPCs answer Unimplemented
	stream     StreamURLs    // nil: Exec, Attach, PortForward answer Unimplemented
	events     *Events       // nil: GetContainerEvents answers Unimplemented
	// handlers are the RuntimeClass handlers whose runtime is usable; nil
	// means every configured one. handlerSet, when set, replaces both
	// handlers and features: the daemon's handlers change with a reload.
	handlers   []string
	handlerSet *handlers.Set
	// features are the detected features per handler ("" = default).
	features map[string]spec.RuntimeFeatures
	usernsOK bool // pods may have their own user namespace (userns.go)
	// nriStatus reports NRI in verbose Status; nil: not reported.
	nriStatus func() NRIStatus
	log       *slog.Logger

	criu          criu.Checker       // run once, on the first checkpoint RPC
	runtimeConfig runtimeConfigStore // kubelet's pod CIDR (update.go)

	ctrFsOnce sync.Once
	ctrFs     string // containerFsMount's answer

	lists listCaches // encoded list answers (listcache.go)
}

// New returns a CRI server over the domain services.
func New(cfg *config.Loaded, images *image.Service, log *slog.Logger) *Server {
	s := &Server{images: images, log: log}
	s.cfg.Store(cfg)
	return s
}

// SetConfig puts a reloaded configuration in force: Status reports it and
// the keys the server reads itself (the default handler) follow it.
func (s *Server) SetConfig(cfg *config.Loaded) { s.cfg.Store(cfg) }

// config is the configuration in force.
func (s *Server) config() *config.Loaded { return s.cfg.Load() }

// WithHandlerSet takes the usable handlers and their features from set,
// whatever a reload puts in it.
func (s *Server) WithHandlerSet(set *handlers.Set) *Server {
	s.handlerSet = set
	return s
}

// WithPods serves the pod sandbox RPCs from m and reports the pod
// network's readiness from network.
func (s *Server) WithPods(m *sandbox.Manager, network *cni.Network) *Server {
	s.pods = m
	s.network = network
	return s
}

// WithContainers serves the container RPCs from m.
func (s *Server) WithContainers(m *container.Manager) *Server {
	s.containers = m
	return s
}

// WithRuntimeHandlers restricts the advertised and accepted RuntimeClass
// handlers to those whose runtime could be opened.
func (s *Server) WithRuntimeHandlers(names []string) *Server {
	s.handlers = slices.Sorted(slices.Values(names))
	return s
}

// runtimeHandlerNames are the usable handlers, sorted.
func (s *Server) runtimeHandlerNames() []string {
	if s.handlerSet != nil {
		return s.handlerSet.Usable()
	}
	if s.handlers != nil {
		return s.handlers
	}
	return slices.Sorted(maps.Keys(s.config().Runtime.Handlers))
}

// checkRuntimeHandler rejects a RuntimeClass handler cradle cannot run;
// "" is the default handler.
func (s *Server) checkRuntimeHandler(name string) error {
	if name == "" || slices.Contains(s.runtimeHandlerNames(), name) {
		return nil
	}
	return errdefs.InvalidArgument("runtime handler %q is not configured or its runtime is unavailable (have: %s)",
		name, strings.Join(s.runtimeHandlerNames(), ", "))
}
