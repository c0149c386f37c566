package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	return fmt.Sprintf(`# written by cradle's bench/pull: a private containerd for the pull benchmark
version = 2
root = %[1]q
state = %[2]q
oom_score = 0

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "%[1]s/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_tcp_service = true
    netns_mounts_under_state_dir = true
    restrict_oom_score_adj = true
    tolerate_missing_hugetlb_controller = true
    disable_hugetlb_controller = true

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = %[4]q
          Root = "%[2]s/runc"
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = %[5]q

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[6]q
`, c.root, c.state, c.socket(), c.runc, c.cniConfDir, c.certsDir)
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

// containerdVersion is "1.6.20~ds1", or "?" when the binary will not say.
func containerdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return strings.TrimSpace(string(out))
	}
	return f[2]
}
