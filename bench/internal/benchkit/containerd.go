package benchkit

import (
	"fmt"
	"os/exec"
	"strings"
)

// ContainerdConfig is a private containerd's config file: its own root,
// state and socket, so it never meets a system containerd, and CRI defaults
// otherwise, plus the settings a private instance on this host needs
// (oom_score_adj clamped, no hugetlb controller, no TCP stream server).
type ContainerdConfig struct {
	Comment      string // first line, after "# "
	Root, State  string
	Socket       string // gRPC; ttrpc listens next to it
	Runc         string
	SandboxImage string // omitted when empty: containerd's default
	CNIBinDir    string // omitted when empty: containerd's default
	CNIConfDir   string
	CNIMaxConfs  int    // omitted when 0: containerd's default
	CertsDir     string // hosts.toml tree of the registry
}

// TOML renders the config file (version 2, containerd 1.6 and 1.7).
func (c ContainerdConfig) TOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# %[1]s
version = 2
root = %[2]q
state = %[3]q
oom_score = 0

[grpc]
  address = %[4]q

[ttrpc]
  address = "%[4]s.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "%[2]s/opt"

  [plugins."io.containerd.grpc.v1.cri"]
`, c.Comment, c.Root, c.State, c.Socket)
	if c.SandboxImage != "" {
		fmt.Fprintf(&b, "    sandbox_image = %q\n", c.SandboxImage)
	}
	fmt.Fprintf(&b, `    stream_server_address = "127.0.0.1"
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
          BinaryName = %[1]q
          Root = "%[2]s/runc"
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
`, c.Runc, c.State)
	if c.CNIBinDir != "" {
		fmt.Fprintf(&b, "      bin_dir = %q\n", c.CNIBinDir)
	}
	fmt.Fprintf(&b, "      conf_dir = %q\n", c.CNIConfDir)
	if c.CNIMaxConfs > 0 {
		fmt.Fprintf(&b, "      max_conf_num = %d\n", c.CNIMaxConfs)
	}
	fmt.Fprintf(&b, `
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %q
`, c.CertsDir)
	return b.String()
}

// ContainerdVersion is "1.6.20~ds1", or "?" when the binary will not say.
func ContainerdVersion(bin string) string {
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
