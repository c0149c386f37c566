package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// cradleModule is the module path whose cmd/cradle the benchmark builds.
const cradleModule = "github.com/cradle-runtime/cradle"

// cniPluginDir is where Debian's containernetworking-plugins installs.
const cniPluginDir = "/usr/lib/cni"

// network is one runtime's pod network: its own bridge, subnet and IPAM
// store, so the two runtimes never share an address or a link.
type network struct {
	name, bridge, subnet string
	confDir, ipamDir     string
}

func newNetwork(work, name, bridge, subnet string) network {
	dir := filepath.Join(work, name, "cni")
	return network{name: name, bridge: bridge, subnet: subnet, confDir: filepath.Join(dir, "net.d"), ipamDir: filepath.Join(dir, "ipam")}
}

// conflist is the same plugin chain for both runtimes (kubelet-style bridge,
// portmap, loopback); only the names and addresses differ.
func (n network) conflist() string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":"bench-pods-%s","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
 {"type":"loopback"}]}
`, n.name, n.bridge, n.subnet, n.ipamDir)
}

func (n network) write() error {
	if err := os.MkdirAll(n.confDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.confDir, "10-bench.conflist"), []byte(n.conflist()), 0o644)
}

// removeBridge deletes the bridge the plugin made; absent is fine.
func (n network) removeBridge() {
	if _, err := os.Stat("/sys/class/net/" + n.bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.bridge).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip link del %s: %v %s\n", n.bridge, err, out)
		}
	}
}

// containerdSetup is a private containerd: its own root, state, socket and
// CNI config under the work dir, so it never meets a system containerd.
type containerdSetup struct {
	bin, runc, sandboxImage string
	certsDir                string
	root, state             string
	config, log             string
	net                     network
}

func newContainerdSetup(work, bin, runc, sandboxImage, certsDir string, net network) containerdSetup {
	dir := filepath.Join(work, "containerd")
	return containerdSetup{
		bin: bin, runc: runc, sandboxImage: sandboxImage, certsDir: certsDir,
		root:   filepath.Join(dir, "root"),
		state:  filepath.Join(dir, "state"),
		config: filepath.Join(dir, "config.toml"),
		log:    filepath.Join(dir, "containerd.log"),
		net:    net,
	}
}

func (c containerdSetup) socket() string { return filepath.Join(c.state, "containerd.sock") }

// configTOML keeps CRI defaults wherever they touch pods, with the settings a
// private instance on this host needs: the sandbox image from the local
// registry (pulled plain HTTP), oom_score_adj clamped (no CAP_SYS_RESOURCE
// in this VM's bounding set) and no hugetlb controller.
func (c containerdSetup) configTOML() string {
	return fmt.Sprintf(`# written by cradle's bench/pods: a private containerd for the pod benchmark
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
    sandbox_image = %[4]q
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
          BinaryName = %[5]q
          Root = "%[2]s/runc"
          SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = %[6]q
      conf_dir = %[7]q
      max_conf_num = 1

    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = %[8]q
`, c.root, c.state, c.socket(), c.sandboxImage, c.runc, cniPluginDir, c.net.confDir, c.certsDir)
}

func (c containerdSetup) start(ctx context.Context) (*daemon, error) {
	for _, dir := range []string{c.root, c.state} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
	}
	if err := c.net.write(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, "containerd", []string{c.bin, "--config", c.config}, c.log, c.socket())
	if err != nil {
		return nil, err
	}
	sock := c.socket()
	// A runc v2 shim serves one pod (its pause and app containers) and
	// names the daemon that started it with -address.
	d.isMonitor = func(argv []string) bool {
		if len(argv) == 0 || filepath.Base(argv[0]) != "containerd-shim-runc-v2" {
			return false
		}
		i := slices.Index(argv, "-address")
		return i >= 0 && i+1 < len(argv) && argv[i+1] == sock
	}
	return d, nil
}

// cradleSetup is a cradle daemon with its own root, state, socket and CNI
// config under the work dir, otherwise on cradle's defaults.
type cradleSetup struct {
	bin, certsDir       string
	dir                 string
	root, state, socket string
	config, log         string
	net                 network
}

func newCradleSetup(work, bin, certsDir string, net network) cradleSetup {
	dir := filepath.Join(work, "cradle")
	return cradleSetup{
		bin:      bin,
		certsDir: certsDir,
		dir:      dir,
		root:     filepath.Join(dir, "root"),
		state:    filepath.Join(dir, "state"),
		socket:   filepath.Join(dir, "state", "cradle.sock"),
		config:   filepath.Join(dir, "cradle.toml"),
		log:      filepath.Join(dir, "cradle.log"),
		net:      net,
	}
}

func (c cradleSetup) configTOML() string {
	return fmt.Sprintf(`# written by cradle's bench/pods
root = %q
state = %q
socket = %q
log_level = "info"

[registry]
config_path = %q

[cni]
conf_dir = %q
plugin_dirs = [%q]
`, c.root, c.state, c.socket, c.certsDir, c.net.confDir, cniPluginDir)
}

func (c cradleSetup) start(ctx context.Context) (*daemon, error) {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	if err := c.net.write(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, "cradle", []string{c.bin, "daemon", "--config", c.config}, c.log, c.socket)
	if err != nil {
		return nil, err
	}
	// conmon daemonizes, so it is no child of cradle; its arguments name
	// paths under cradle's own dirs.
	dir := c.dir + "/"
	d.isMonitor = func(argv []string) bool {
		if len(argv) == 0 || filepath.Base(argv[0]) != "conmon" {
			return false
		}
		return slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, dir) })
	}
	return d, nil
}

// buildCradle builds cmd/cradle of the checkout the working directory is in
// into dir and returns the binary's path.
func buildCradle(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr != nil {
			return "", fmt.Errorf("no Go toolchain to build cradle (pass -cradle PATH): %w", err)
		}
		goBin = "/usr/local/go/bin/go"
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	mod, err := os.ReadFile(gomod)
	if gomod == "" || gomod == os.DevNull || err != nil || !strings.Contains(string(mod), "module "+cradleModule+"\n") {
		return "", fmt.Errorf("run from cradle's checkout (go.mod of %s) or pass -cradle PATH", cradleModule)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cradle")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, cradleModule+"/cmd/cradle")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/cradle: %w\n%s", err, out)
	}
	return bin, nil
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
