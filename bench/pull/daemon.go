package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// daemon is one runtime under test and where it keeps images on disk.
type daemon struct {
	*benchkit.Daemon

	// storeDirs hold the runtime's image content (blobs, unpacked layers,
	// snapshots); after RemoveImage they must be empty. Entries named in
	// storeIgnore directly below a store dir are scratch dirs that may stay,
	// as long as they are empty themselves.
	storeDirs   []string
	storeIgnore map[string]bool
}

// startDaemon starts a runtime with the CRI client timeouts of this
// benchmark: Version answers at once, and pulls are unbounded by the client
// (as in kubelet) while 5 minutes bound the other image calls, RemoveImage
// among them.
func startDaemon(ctx context.Context, name string, argv []string, logPath, socket string, env ...string) (*daemon, error) {
	d, err := benchkit.StartDaemon(ctx, benchkit.DaemonSpec{
		Name: name, Argv: argv, LogPath: logPath, Socket: socket, Env: env,
		RuntimeTimeout: 5 * time.Second, ImageTimeout: 5 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	return &daemon{Daemon: d}, nil
}

// storeUsage counts what the runtime keeps of images on disk: entries
// (files, dirs, links) and bytes of regular files under its store dirs.
func (d *daemon) storeUsage() (entries int, size int64, err error) {
	for _, dir := range d.storeDirs {
		err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil // removed while we walked, or not made yet
				}
				return err
			}
			if p == dir {
				return nil
			}
			if filepath.Dir(p) == dir && d.storeIgnore[e.Name()] {
				return nil // the scratch dir itself; its content counts
			}
			entries++
			if e.Type().IsRegular() {
				if info, err := e.Info(); err == nil {
					size += info.Size()
				}
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return entries, size, nil
}
