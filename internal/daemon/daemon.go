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

	"github.com/cradle-runtime/cradle/internal/cdi"
	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/cri"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/spec"
	"github.com/cradle-runtime/cradle/internal/stats"
	"github.com/cradle-runtime/cradle/internal/tracing"
	"github.com/cradle-runtime/cradle/internal/version"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// gracefulStopTimeout bounds how long in-flight calls may finish at shutdown.
const gracefulStopTimeout = 10 * time.Second

// Options are what Run needs besides its context.
type Options struct {
	Config *config.Loaded
	// Reload re-reads the configuration the way Config was read (the same
	// files and flags); nil leaves SIGHUP without effect.
	Reload func() (*config.Loaded, error)
	Log    *slog.Logger
	// Level is Log's level; a reload sets it from log_level. Nil: fixed.
	Level *slog.LevelVar
	// Hangup delivers the requests to reload (SIGHUP).
	Hangup <-chan os.Signal
	// Ready, if not nil, is called once the socket accepts connections.
	Ready func()
}

// Run serves until ctx is cancelled (the caller cancels it on SIGTERM/SIGINT).
func Run(ctx context.Context, opts Options) error {
	cfg, log := opts.Config, opts.Log
	// Before anything is exec'd: runc must not see NOTIFY_SOCKET.
	notify := takeNotifyEnv(log)
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

	// Tracing first, so recovery's and the first calls' spans are kept;
	// metrics count from here on, and are served once the stores exist.
	tel := newTelemetry(log)
	defer tel.Close()
	if err := tracing.Apply(cfg.Tracing, log); err != nil {
		return err
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
		Observer:               tel.metrics,
	}, layers)
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	defer images.Close()
	opened, err := openRuntimes(cfg, log)
	if err != nil {
		return err
	}
	network, err := cni.New(cfg.CNI.ConfDir, cfg.CNI.PluginDirs, filepath.Join(cfg.Root, "cni-cache"))
	if err != nil {
		return fmt.Errorf("CNI: %w", err)
	}
	network.SetCallTimeout(cfg.CNI.CallTimeout.Std())
	facts, err := spec.DetectHostFacts()
	if err != nil {
		return fmt.Errorf("detect host facts: %w", err)
	}
	runtimes := handlers.New(handlers.Snapshot{Default: cfg.Runtime.DefaultHandler, Runtimes: opened,
		Features: detectRuntimeFeatures(ctx, cfg, usable(opened), facts, log)})
	// The runtimes in force at the end, reloads included.
	defer func() { closeRuntimes(runtimes.All()) }()
	devices := cdi.New(cfg.CDI.SpecDirs, log.With("component", "cdi"))
	defer devices.Close()
	node := &spec.Node{Host: facts, CgroupDriver: cfg.Runtime.CgroupDriver, FeaturesOf: runtimes.Features, CDI: devices}
	// Pods stop their containers and containers look their pods up: the
	// hook reads the container manager once it exists.
	var containers *container.Manager
	// NRI plugins hear of both managers' events once NRI starts below.
	plugins := &nriBridge{}
	// Lifecycle events of both managers, recovery's included, for
	// GetContainerEvents; Close before the graceful stop ends its streams.
	evs := cri.NewEvents(events.Config{OnDrop: tel.metrics.EventsDropped}, log.With("component", "events"))
	defer evs.Close()
	pods, err := sandbox.New(ctx, sandbox.Config{
		Root:           cfg.Root,
		State:          cfg.State,
		CNI:            network,
		ShmSize:        cfg.Runtime.PodShmSize,
		Init:           podInit{runtimes: runtimes},
		DefaultHandler: runtimes.Default,
		Node:           node,
		StopContainers: stopPodContainers(func() *container.Manager { return containers }),
		Events:         evs.Sandbox,
		Observer:       tel.metrics,
		NRI:            plugins,
	})
	if err != nil {
		return fmt.Errorf("open pod sandboxes: %w", err)
	}
	containers, err = container.New(container.Config{
		Root:      cfg.Root,
		State:     cfg.State,
		Layers:    layers,
		Images:    images,
		Runtimes:  runtimes,
		Node:      node,
		Sandboxes: podLookup{pods: pods},
		Log:       log.With("component", "container"),
		Events:    evs.Container,
		Observer:  tel.metrics,
		NRI:       plugins,
	})
	if err != nil {
		return fmt.Errorf("open containers: %w", err)
	}
	defer containers.Close()
	plugins.pods, plugins.containers = pods, containers
	plugins.start(cfg.NRI, facts, devices, log)
	defer plugins.stop()
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

	tel.pods, tel.containers, tel.runtimes = pods, containers, runtimes
	if err := tel.server.Apply(cfg.Metrics); err != nil {
		return err
	}

	srvOpts := cri.ServerOptions(log, tel.metrics)
	if rpcTimes != nil {
		srvOpts = append(srvOpts, grpc.StatsHandler(rpcTimes))
	}
	srv := grpc.NewServer(srvOpts...)
	api := cri.New(cfg, images, log).WithPods(pods, network).WithContainers(containers).
		WithStats(collector, statsTargets).
		WithHandlerSet(runtimes).WithEvents(evs).WithUserNamespaces(cfg.Root).WithNRIStatus(plugins.status)
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

	// Each section a reload can change, in order; the CRI server takes
	// the new configuration last, once every section applies it.
	reloads := newReloader(cfg, opts.Reload, log,
		simpleApplier("log_level", func(next *config.Loaded) { setLevel(opts.Level, next.LogLevel) }),
		Applier{Section: "registry", Prepare: func(_ context.Context, _, next *config.Loaded) (func(), func(), error) {
			r := next.Registry
			return func() { _ = images.SetRegistry(r.ConfigPath, r.MaxConcurrentDownloads, r.StallTimeout.Std()) }, nil, nil
		}},
		handlerApplier(runtimes, facts, log),
		simpleApplier("runtime.pod_shm_size", func(next *config.Loaded) { _ = pods.SetShmSize(next.Runtime.PodShmSize) }),
		simpleApplier("stream.url_ttl", func(next *config.Loaded) { streams.SetURLTTL(next.Stream.URLTTL.Std()) }),
		// A listener or exporter that cannot start keeps the old one (see
		// telemetry.Apply); the rest of the reload stands.
		simpleApplier("metrics, tracing", func(next *config.Loaded) {
			if err := tel.Apply(next.Config); err != nil {
				log.Error("reload: [metrics] or [tracing] not applied, the old setting stays", "err", err)
			}
		}),
		simpleApplier("cri", func(next *config.Loaded) { api.SetConfig(next) }),
	)
	if opts.Ready != nil {
		opts.Ready()
	}
	notify.send("READY=1")
	health, closeHealth := statusCheck(cfg.Socket)
	defer closeHealth()
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	wdDone := make(chan struct{})
	go func() { notify.runWatchdog(wdCtx, health); close(wdDone) }()
	// Before closeHealth: no health check runs on a closed connection.
	defer func() { stopWatchdog(); <-wdDone }()

	for done := false; !done; {
		select {
		case err := <-serveErr:
			notify.send("STOPPING=1")
			if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve CRI: %w", err)
			}
			return nil
		case <-opts.Hangup:
			notify.reloading()
			log.Info("reloading the configuration (SIGHUP)")
			_, _ = reloads.reload(ctx)
			notify.send("READY=1")
		case <-ctx.Done():
			done = true
		}
	}
	notify.send("STOPPING=1")
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

// setLevel sets the log level; config validated it.
func setLevel(v *slog.LevelVar, level string) {
	if v == nil {
		return
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err == nil {
		v.Set(l)
	}
}
