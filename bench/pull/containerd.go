package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// containerdSetup is a private containerd: its own root, state and socket
// under the work dir, so it never meets a system containerd. (1.6 still puts
// shim sockets under /run/containerd/s/, named by a hash of our socket path,
// but a pull starts no shim.)
type containerdSetup struct {
	bin, runc            string
	root, state          string
	config, log          string
	certsDir, cniConfDir string
}

func newContainerdSetup(work, bin, runc, certsDir, cniConfDir string) containerdSetup {
	dir := filepath.Join(work, "containerd")
	return containerdSetup{
		bin:        bin,
		runc:       runc,
		root:       filepath.Join(dir, "root"),
		state:      filepath.Join(dir, "state"),
		config:     filepath.Join(dir, "config.toml"),
		log:        filepath.Join(dir, "containerd.log"),
		certsDir:   certsDir,
		cniConfDir: cniConfDir,
	}
}

func (c containerdSetup) socket() string { return filepath.Join(c.state, "containerd.sock") }

// configTOML is the config of the instance: CRI defaults wherever they touch
// pulls (overlayfs snapshotter, max_concurrent_downloads 3, content kept
// after unpack), plus the settings a private instance on this host needs.
func (c containerdSetup) configTOML() string {
	return benchkit.ContainerdConfig{
		Comment: "written by cradle's bench/pull: a private containerd for the pull benchmark",
		Root:    c.root, State: c.state, Socket: c.socket(),
		Runc:       c.runc,
		CNIConfDir: c.cniConfDir,
		CertsDir:   c.certsDir,
	}.TOML()
}

// start writes the config and starts containerd.
func (c containerdSetup) start(ctx context.Context) (*daemon, error) {
	for _, dir := range []string{c.root, c.state} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, "containerd", []string{c.bin, "--config", c.config}, c.log, c.socket())
	if err != nil {
		return nil, err
	}
	// Content blobs and overlay snapshots: RemoveImage deletes the image and
	// runs containerd's garbage collector synchronously, which empties both.
	d.storeDirs = []string{
		filepath.Join(c.root, "io.containerd.content.v1.content", "blobs"),
		filepath.Join(c.root, "io.containerd.content.v1.content", "ingest"),
		filepath.Join(c.root, "io.containerd.snapshotter.v1.overlayfs", "snapshots"),
	}
	d.storeIgnore = map[string]bool{"sha256": true} // blobs/sha256/ itself
	return d, nil
}
