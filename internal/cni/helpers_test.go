package cni

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
)

const (
	systemPlugins = "/usr/lib/cni"
	testNetName   = "cradletest"
)

// env is one test's CNI setup: its own conf, cache, IPAM and fake-plugin
// directories; the real plugins come from systemPlugins.
type env struct {
	confDir, cacheDir, dataDir, fakeDir string
	net                                 *Network
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{
		confDir:  filepath.Join(base, "net.d"),
		cacheDir: filepath.Join(base, "cache"),
		dataDir:  filepath.Join(base, "ipam"),
		fakeDir:  filepath.Join(base, "fakebin"),
	}
	for _, d := range []string{e.confDir, e.fakeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n, err := New(e.confDir, []string{e.fakeDir, systemPlugins}, e.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	e.net = n
	return e
}

func (e *env) writeConf(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.confDir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakePlugin installs a shell-script plugin. body is a case arm list on
// $CNI_COMMAND; commands it does not list succeed silently.
func (e *env) fakePlugin(t *testing.T, name, body string) {
	t.Helper()
	script := "#!/bin/sh\ncat >/dev/null\ncase \"$CNI_COMMAND\" in\n" + body + "\n*) exit 0 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(e.fakeDir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// bridgeNet is the harness-like chain: bridge with host-local IPAM in the
// test's data dir, then extra plugins (JSON objects).
func (e *env) bridgeNet(bridge string, ranges []string, extra ...string) string {
	var rs []string
	for _, r := range ranges {
		rs = append(rs, fmt.Sprintf(`[{"subnet": %q}]`, r))
	}
	plugins := append([]string{fmt.Sprintf(`{
		"type": "bridge", "bridge": %q, "isGateway": true, "isDefaultGateway": false,
		"ipMasq": false, "hairpinMode": true,
		"ipam": {"type": "host-local", "ranges": [%s], "dataDir": %q}}`,
		bridge, strings.Join(rs, ", "), e.dataDir)}, extra...)
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [%s]}`, testNetName, strings.Join(plugins, ",\n"))
}

const (
	portmapPlugin  = `{"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}`
	loopbackPlugin = `{"type": "loopback"}`
)

// allocations lists the addresses host-local holds in the test's data dir.
func (e *env) allocations(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dataDir, testNetName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		if _, err := netip.ParseAddr(en.Name()); err == nil {
			out = append(out, en.Name())
		}
	}
	return out
}

func (e *env) cacheEntries(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.cacheDir, "results"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

// needNetwork skips unless the test can create namespaces, bridges and
// iptables rules with the system plugins.
func needNetwork(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, bridges, iptables")
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(systemPlugins, p)); err != nil {
			t.Skipf("CNI plugin %s not installed (containernetworking-plugins)", p)
		}
	}
	for _, c := range []string{"ip", "iptables-save"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed", c)
		}
	}
}

// useBridge reserves a test bridge name and subnets: it fails if a host
// interface already routes them, and afterwards deletes the bridge and puts
// back the forwarding sysctls the bridge plugin turns on for a gateway.
func useBridge(t *testing.T, bridge string, subnets ...string) {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Name == bridge {
			continue // a leftover of an interrupted run; deleted below
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			for _, s := range subnets {
				if p := netip.MustParsePrefix(s); p.Contains(addr(ipn.IP)) {
					t.Fatalf("test subnet %s is in use on %s", s, ifc.Name)
				}
			}
		}
	}
	deleteLink(t, bridge)
	sysctls := []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}
	saved := map[string][]byte{}
	for _, s := range sysctls {
		if b, err := os.ReadFile(s); err == nil {
			saved[s] = b
		}
	}
	hadHostport := natChainExists("CNI-HOSTPORT-DNAT")
	hadTable := map[string]bool{"ip": nftTableExists("ip"), "ip6": nftTableExists("ip6")}
	t.Cleanup(func() {
		deleteLink(t, bridge)
		for s, b := range saved {
			if err := os.WriteFile(s, b, 0o644); err != nil {
				t.Errorf("restore %s: %v", s, err)
			}
		}
		if !hadHostport {
			removeIdlePortmapChains(t)
		}
		// iptables-nft creates the nat tables on first use; drop them
		// again when they were not there before and hold no rule now.
		for fam, save := range map[string]string{"ip": "iptables-save", "ip6": "ip6tables-save"} {
			if hadTable[fam] {
				continue
			}
			if out, err := exec.Command(save, "-t", "nat").Output(); err == nil && !strings.Contains(string(out), "\n-A ") {
				exec.Command("nft", "delete", "table", fam, "nat").Run()
			}
		}
	})
}

func deleteLink(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat("/sys/class/net/" + name); err != nil {
		return
	}
	if out, err := exec.Command("ip", "link", "del", "dev", name).CombinedOutput(); err != nil {
		t.Errorf("delete %s: %v: %s", name, err, out)
	}
}

// nftTableExists reports whether the nat table of family exists; true when
// nft is missing (then nothing is removed).
func nftTableExists(family string) bool {
	if _, err := exec.LookPath("nft"); err != nil {
		return true
	}
	return exec.Command("nft", "list", "table", family, "nat").Run() == nil
}

func natChainExists(chain string) bool {
	return exec.Command("iptables", "-w", "-t", "nat", "-S", chain).Run() == nil
}

// removeIdlePortmapChains undoes the portmap plugin's one-time nat setup
// (top-level CNI-HOSTPORT-* chains and their jumps) when this test created
// it and no pod rules remain in it. Per-pod rules are DEL's business and are
// checked by the tests themselves.
func removeIdlePortmapChains(t *testing.T) {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Errorf("iptables-save: %v", err)
		return
	}
	var jumps, chains []string
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) > 1 && f[0] == "-A" && strings.HasPrefix(f[1], "CNI-HOSTPORT-"):
			if f[1] == "CNI-HOSTPORT-DNAT" {
				return // another pod's mapping: leave the setup in place
			}
		case len(f) > 1 && f[0] == "-A" && strings.Contains(l, "-j CNI-HOSTPORT-"):
			jumps = append(jumps, l)
		case strings.HasPrefix(l, ":CNI-HOSTPORT-"):
			chains = append(chains, strings.Fields(l[1:])[0])
		}
	}
	for _, j := range jumps {
		args := append([]string{"-w", "-t", "nat", "-D"}, splitRule(strings.TrimPrefix(j, "-A "))...)
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			t.Errorf("iptables %v: %v: %s", args, err, out)
		}
	}
	for _, c := range chains {
		exec.Command("iptables", "-w", "-t", "nat", "-F", c).Run()
		if out, err := exec.Command("iptables", "-w", "-t", "nat", "-X", c).CombinedOutput(); err != nil {
			t.Errorf("iptables -X %s: %v: %s", c, err, out)
		}
	}
}

// splitRule splits an iptables-save rule into arguments, honouring the
// double quotes iptables-save puts around comments.
func splitRule(rule string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range rule {
		switch {
		case r == '"':
			inQuote, have = !inQuote, true
		case r == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// natRulesFor lists nat rules that name the pod (portmap tags its rules
// with the container ID in comments).
func natRulesFor(t *testing.T, podID string) []string {
	t.Helper()
	var out []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b, err := exec.Command(cmd, "-t", "nat").Output()
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, podID) {
				out = append(out, l)
			}
		}
	}
	return out
}

func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	entries, err := os.ReadDir("/sys/class/net/" + bridge + "/brif")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// newPod pins a network namespace for a pod and unpins it at the end.
func newPod(t *testing.T, name string) PodNet {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ns")
	p, err := netns.Pin(dir, netns.Net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Unpin(dir); err != nil {
			t.Error(err)
		}
	})
	id := make([]byte, 32)
	rand.Read(id)
	return PodNet{
		ID:        hex.EncodeToString(id),
		Name:      name,
		Namespace: "cni-test",
		UID:       "uid-" + name,
		NetnsPath: p.Path(netns.Net),
	}
}

// podLinks returns the pod's links and their addresses, read inside its
// netns. (/sys/class/net would show the host's links: sysfs belongs to the
// netns that mounted it, not to the reading thread.)
func podLinks(t *testing.T, nsPath string) map[string][]netip.Prefix {
	t.Helper()
	out := map[string][]netip.Prefix{}
	err := netns.Do(nsPath, func() error {
		ifaces, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifaces {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			out[ifc.Name] = nil
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					ones, _ := ipn.Mask.Size()
					out[ifc.Name] = append(out[ifc.Name], netip.PrefixFrom(addr(ipn.IP), ones))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: want kind %v (code %v)", err, kind, errdefs.Code(err))
	}
}

func wantContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Addr() == a })
}
