package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

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
	return benchkit.ContainerdConfig{
		Comment: "written by cradle's bench/pods: a private containerd for the pod benchmark",
		Root:    c.root, State: c.state, Socket: c.socket(),
		Runc:         c.runc,
		SandboxImage: c.sandboxImage,
		CNIBinDir:    cniPluginDir,
		CNIConfDir:   c.net.confDir,
		CNIMaxConfs:  1,
		CertsDir:     c.certsDir,
	}.TOML()
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
	return benchkit.CradleConfig{
		Comment: "written by cradle's bench/pods",
		Root:    c.root, State: c.state, Socket: c.socket,
		CertsDir:      c.certsDir,
		CNIConfDir:    c.net.confDir,
		CNIPluginDirs: []string{cniPluginDir},
	}.TOML()
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
