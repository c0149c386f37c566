package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// CNIPluginDir is where Debian's containernetworking-plugins installs.
const CNIPluginDir = "/usr/lib/cni"

// CheckCNIPlugins tells which plugin of the pod network is missing.
func CheckCNIPlugins() error {
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(CNIPluginDir, p)); err != nil {
			return fmt.Errorf("CNI plugin %s missing (apt-get install containernetworking-plugins)", p)
		}
	}
	return nil
}

// Network is one runtime's pod network: its own bridge, subnet and IPAM
// store, so two runtimes never share an address or a link.
type Network struct {
	Name             string // the conflist's name; host-local keeps leases in IPAMDir/Name/
	Bridge, Subnet   string
	ConfDir, IPAMDir string
}

// NewNetwork keeps the network's config and IPAM store under dir.
func NewNetwork(dir, name, bridge, subnet string) Network {
	return Network{Name: name, Bridge: bridge, Subnet: subnet,
		ConfDir: filepath.Join(dir, "net.d"), IPAMDir: filepath.Join(dir, "ipam")}
}

// Conflist is the same plugin chain for every runtime (kubelet-style
// bridge, portmap, loopback); only the names and addresses differ.
func (n Network) Conflist() string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
 {"type":"loopback"}]}
`, n.Name, n.Bridge, n.Subnet, n.IPAMDir)
}

// Write puts the conflist into ConfDir.
func (n Network) Write() error {
	if err := os.MkdirAll(n.ConfDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.ConfDir, "10-bench.conflist"), []byte(n.Conflist()), 0o644)
}

// RemoveBridge deletes the bridge the plugin made; absent is fine.
func (n Network) RemoveBridge() {
	if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.Bridge).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip link del %s: %v %s\n", n.Bridge, err, out)
		}
	}
}
