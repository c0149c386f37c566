package main

import (
	"context"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// daemon is one runtime under test and how to tell its per-pod monitors.
type daemon struct {
	*benchkit.Daemon

	// isMonitor tells whether a process (by its command line) is one of
	// this runtime's per-pod monitors: containerd's shims or cradle's conmons.
	isMonitor func(argv []string) bool
}

// startDaemon starts a runtime with kubelet's default 2 minute timeout on
// every CRI call.
func startDaemon(ctx context.Context, name string, argv []string, logPath, socket string) (*daemon, error) {
	d, err := benchkit.StartDaemon(ctx, benchkit.DaemonSpec{
		Name: name, Argv: argv, LogPath: logPath, Socket: socket,
		RuntimeTimeout: 2 * time.Minute, ImageTimeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &daemon{Daemon: d}, nil
}
