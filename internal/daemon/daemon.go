// Package daemon wires cradle's services together and runs them: it takes the
// root lock, opens the stores, serves CRI on the unix socket and shuts down on
// SIGTERM without touching running containers.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/cri"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/spec"
	"github.com/cradle-runtime/cradle/internal/stats"
	"github.com/cradle-runtime/cradle/internal/version"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// gracefulStopTimeout bounds how long in-flight calls may finish at shutdown.
const gracefulStopTimeout = 10 * time.Second

// Run serves until ctx is cancelled (the caller cancels it on SIGTERM/SIGINT).
// ready, if not nil, is called once the socket accepts connections.
func Run(ctx context.Context, cfg *config.Loaded, log *slog.Logger, ready func()) error {
	// Monitors and runtime processes whose parent dies are re-parented to us
	// rather than to PID 1, so we can reap them promptly.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		log.Warn("cannot become a child subreaper; orphaned processes are left to PID 1", "err", err)
	}
	for _, dir := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
	}
	lock, err := lockRoot(cfg.Root)
	if err != nil {
		return err
	}
	defer lock.release()
	stateLock, err := lockState(cfg.State)
	if err != nil {
		return err
	}
	defer stateLock.release()
	// With the debug endpoint on, it also shows the server's time per CRI
	// call (cri.RPCTimes), for benchmarks.
	var rpcTimes *cri.RPCTimes
	if addr := os.Getenv(DebugAddrEnv); addr != "" {
		rpcTimes = cri.NewRPCTimes()
		stop, err := serveDebug(addr, log, rpcTimes)
		if err != nil {
			return err
		}
		defer stop()
	}

	layers, err := layer.Open(filepath.Join(cfg.Root, "layers"))
	if err != nil {
		return fmt.Errorf("open layer store: %w", err)
	}
	images, err := image.New(image.Config{
		Dir:                    filepath.Join(cfg.Root, "images"),
		RegistryConfigPath:     cfg.Registry.ConfigPath,
		MaxConcurrentDownloads: cfg.Registry.MaxConcurrentDownloads,
		StallTimeout:           cfg.Registry.StallTimeout.Std(),
	}, layers)
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	defer images.Close()
	runtimes, err := openRuntimes(cfg, log)
	if err != nil {
		return err
	}
	defer closeRuntimes(runtimes)
	network, err := cni.New(cfg.CNI.ConfDir, cfg.CNI.PluginDirs, filepath.Join(cfg.Root, "cni-cache"))
	if err != nil {
		return fmt.Errorf("CNI: %w", err)
	}
	network.SetCallTimeout(cfg.CNI.CallTimeout.Std())
	facts, err := spec.DetectHostFacts()
	if err != nil {
		return fmt.Errorf("detect host facts: %w", err)
	}
	node := &spec.Node{Host: facts, CgroupDriver: cfg.Runtime.CgroupDriver,
		Runtimes: detectRuntimeFeatures(ctx, cfg, usable(runtimes), facts, log)}
	// Pods stop their containers and containers look their pods up: the
	// hook reads the container manager once it exists.
	var containers *container.Manager
	// Lifecycle events of both managers, recovery's included, for
	// GetContainerEvents; Close before the graceful stop ends its streams.
	evs := cri.NewEvents(events.Config{}, log.With("component", "events"))
	defer evs.Close()
	pods, err := sandbox.New(ctx, sandbox.Config{
		Root:           cfg.Root,
		State:          cfg.State,
		CNI:            network,
		ShmSize:        cfg.Runtime.PodShmSize,
		Init:           podInit{runtimes: runtimes, defaultHandler: cfg.Runtime.DefaultHandler},
		Node:           node,
		StopContainers: stopPodContainers(func() *container.Manager { return containers }),
		Events:         evs.Sandbox,
	})
	if err != nil {
		return fmt.Errorf("open pod sandboxes: %w", err)
	}
	containers, err = container.New(container.Config{
		Root:           cfg.Root,
		State:          cfg.State,
		Layers:         layers,
		Images:         images,
		Runtimes:       runtimes,
		DefaultHandler: cfg.Runtime.DefaultHandler,
		Node:           node,
		Sandboxes:      podLookup{pods: pods},
		Log:            log.With("component", "container"),
		Events:         evs.Container,
	})
	if err != nil {
		return fmt.Errorf("open containers: %w", err)
	}
	defer containers.Close()
	statsTargets := cri.StatsTargets(containers)
	collector, err := stats.New(stats.Config{
		Hierarchy: stats.DetectHierarchy("/sys/fs/cgroup"),
		Targets:   statsTargets.All,
		Pods:      cri.PodStatsTargets(pods, containers),
		Log:       log.With("component", "stats"),
	})
	if err != nil {
		return fmt.Errorf("start stats collector: %w", err)
	}
	defer collector.Close()

	// Every holder of layers has re-acquired them: what is left is garbage of
	// an interrupted pull or removal.
	if err := layers.Prune(); err != nil {
		log.Warn("pruning unreferenced layers failed", "err", err)
	}

	opts := cri.ServerOptions(log)
	if rpcTimes != nil {
		opts = append(opts, grpc.StatsHandler(rpcTimes))
	}
	srv := grpc.NewServer(opts...)
	api := cri.New(cfg, images, log).WithPods(pods, network).WithContainers(containers).
		WithStats(collector, statsTargets).
		WithRuntimeHandlers(usableHandlers(runtimes)).WithEvents(evs).
		WithRuntimeFeatures(node.Runtimes).WithUserNamespaces(cfg.Root)
	streams, err := cri.ListenStreaming(cfg.Stream, containers, pods)
	if err != nil {
		return fmt.Errorf("start streaming server: %w", err)
	}
	defer streams.Close()
	api.WithStreaming(streams)
	log.Info("streaming server listening", "address", streams.Addr().String())
	runtimeapi.RegisterRuntimeServiceServer(srv, api)
	runtimeapi.RegisterImageServiceServer(srv, api)

	lis, err := listenSocket(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	log.Info("cradle daemon serving CRI", "version", version.Version, "socket", cfg.Socket,
		"root", cfg.Root, "state", cfg.State, "config", cfg.Files)
	if ready != nil {
		ready()
	}

	select {
	case err := <-serveErr:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve CRI: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("shutting down; containers keep running")
	evs.Close()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(gracefulStopTimeout):
		log.Warn("in-flight calls did not finish in time; closing connections")
		srv.Stop()
	}
	return nil
}
