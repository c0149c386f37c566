package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/testnet"
)

const (
	systemPlugins = "/usr/lib/cni"
	testNet       = "cradlesbtest"
)

// The bridge and subnets are this test process's own, so that two runs of
// the package on one host do not share them.
var (
	testLease   = testnet.MustLease()
	testBridge  = testLease.Bridge
	testSubnet4 = testLease.V4.String()
	testSubnet6 = testLease.V6.String()
)

// env is one test's directories and, with a network, its own CNI config,
// cache, IPAM data and fake-plugin dirs. Real plugins come from
// systemPlugins.
type env struct {
	root, state                         string
	confDir, cacheDir, dataDir, fakeDir string
	net                                 *cni.Network
	cfg                                 Config
}

func newEnv(t *testing.T, withNet bool) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{root: filepath.Join(base, "root"), state: filepath.Join(base, "state")}
	hostFiles := filepath.Join(base, "host")
	os.MkdirAll(hostFiles, 0o755)
	resolv, hosts := filepath.Join(hostFiles, "resolv.conf"), filepath.Join(hostFiles, "hosts")
	os.WriteFile(resolv, []byte("nameserver 192.0.2.53\nsearch host.example\n"), 0o644)
	os.WriteFile(hosts, []byte("127.0.0.1 localhost\n192.0.2.2 node-1\n"), 0o644)
	e.cfg = Config{Root: e.root, State: e.state, ShmSize: 8 << 20, HostResolvConf: resolv, HostHosts: hosts}
	if withNet {
		needNetwork(t)
		e.confDir, e.dataDir, e.fakeDir = filepath.Join(base, "net.d"), filepath.Join(base, "ipam"), filepath.Join(base, "fakebin")
		e.cacheDir = filepath.Join(e.root, "cni")
		os.MkdirAll(e.confDir, 0o755)
		os.MkdirAll(e.fakeDir, 0o755)
		n, err := cni.New(e.confDir, []string{e.fakeDir, systemPlugins}, e.cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		e.net, e.cfg.CNI = n, n
		useBridge(t)
		e.writeConf(t)
	}
	// Whatever a test leaves, unmount it so TempDir's removal works and no
	// namespace outlives the test.
	t.Cleanup(func() {
		for _, mp := range mountsUnder(t, e.state) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	return e
}

func (e *env) manager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// These tests look at what recovery did; tests of serving during
	// recovery call New themselves.
	m.WaitRecovered()
	return m
}

// writeConf installs a dual-stack bridge network with portmap, then extra
// plugins (JSON objects).
func (e *env) writeConf(t *testing.T, extra ...string) {
	t.Helper()
	plugins := append([]string{fmt.Sprintf(`{
		"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
		"ipam": {"type": "host-local", "ranges": [[{"subnet": %q}], [{"subnet": %q}]], "dataDir": %q}}`,
		testBridge, testSubnet4, testSubnet6, e.dataDir),
		`{"type": "portmap", "capabilities": {"portMappings": true}}`}, extra...)
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [%s]}`, testNet, strings.Join(plugins, ",\n"))
	if err := os.WriteFile(filepath.Join(e.confDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakePlugin installs a shell-script plugin that fails ADD.
func (e *env) failingPlugin(t *testing.T, name string) {
	t.Helper()
	script := "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then\n" +
		"echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"injected failure\"}'; exit 1\nfi\n" +
		"[ \"$CNI_COMMAND\" = VERSION ] && echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(e.fakeDir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// leases lists the addresses host-local holds.
func (e *env) leases(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dataDir, testNet))
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

// assertNoTrace checks that nothing of any pod is left: no records, pod
// dirs, mounts, leases, CNI cache entries or bridge ports.
func (e *env) assertNoTrace(t *testing.T) {
	t.Helper()
	for _, d := range []string{filepath.Join(e.root, "pods"), filepath.Join(e.state, "pods")} {
		if entries, _ := os.ReadDir(d); len(entries) > 0 {
			t.Errorf("%s still holds %v", d, names(entries))
		}
	}
	if mps := mountsUnder(t, e.state); len(mps) > 0 {
		t.Errorf("mounts left: %v", mps)
	}
	if e.net == nil {
		return
	}
	if l := e.leases(t); len(l) > 0 {
		t.Errorf("IP leases left: %v", l)
	}
	if ids, err := e.net.Attached(); err != nil || len(ids) > 0 {
		t.Errorf("CNI attachments left: %v %v", ids, err)
	}
	// A veth whose namespace is gone without a CNI DEL (someone unpinned
	// it) is destroyed by the kernel's asynchronous netns cleanup.
	var ports []string
	deadline := time.Now().Add(10 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		entries, _ := os.ReadDir("/sys/class/net/" + testBridge + "/brif")
		if ports = names(entries); len(ports) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(delay)
	}
	if len(ports) > 0 {
		t.Errorf("bridge ports left: %v", ports)
	}
}

func names(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// mountsUnder lists this mount namespace's mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces and mounts")
	}
}

func needNetwork(t *testing.T) {
	t.Helper()
	needRoot(t)
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(systemPlugins, p)); err != nil {
			t.Skipf("CNI plugin %s not installed", p)
		}
	}
	for _, c := range []string{"ip", "iptables-save"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s not installed", c)
		}
	}
}

// useBridge deletes the test bridge before and after the test, and puts
// back the forwarding sysctls and iptables nat state the plugins change.
func useBridge(t *testing.T) {
	t.Helper()
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ifc.Name != testBridge {
				ip, _ := netip.AddrFromSlice(ipn.IP)
				if netip.MustParsePrefix(testSubnet4).Contains(ip.Unmap()) || netip.MustParsePrefix(testSubnet6).Contains(ip) {
					t.Fatalf("test subnet in use on %s", ifc.Name)
				}
			}
		}
	}
	exec.Command("ip", "link", "del", testBridge).Run()
	saved := map[string][]byte{}
	for _, s := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if b, err := os.ReadFile(s); err == nil {
			saved[s] = b
		}
	}
	hadNat := map[string]bool{}
	for _, fam := range []string{"ip", "ip6"} {
		hadNat[fam] = exec.Command("nft", "list", "table", fam, "nat").Run() == nil
	}
	hadHostport := exec.Command("iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT").Run() == nil
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", testBridge).Run()
		for s, b := range saved {
			os.WriteFile(s, b, 0o644)
		}
		if !hadHostport {
			removePortmapChains()
		}
		for fam, save := range map[string]string{"ip": "iptables-save", "ip6": "ip6tables-save"} {
			if out, err := exec.Command(save, "-t", "nat").Output(); !hadNat[fam] && err == nil && !strings.Contains(string(out), "\n-A ") {
				exec.Command("nft", "delete", "table", fam, "nat").Run()
			}
		}
	})
}

// removePortmapChains undoes portmap's one-time setup (its top-level
// chains and the jumps to them) for both families; per-pod rules are DEL's
// business and the tests check them.
func removePortmapChains() {
	for _, fam := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(fam+"-save", "-t", "nat").Output()
		if err != nil {
			continue
		}
		var chains []string
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) > 1 && f[0] == "-A" && !strings.HasPrefix(f[1], "CNI-") && strings.Contains(l, "-j CNI-HOSTPORT-"):
				args := append([]string{"-w", "-t", "nat", "-D"}, splitRule(strings.TrimPrefix(l, "-A "))...)
				exec.Command(fam, args...).Run()
			case strings.HasPrefix(l, ":CNI-HOSTPORT-"):
				chains = append(chains, strings.Fields(l[1:])[0])
			}
		}
		for _, c := range chains {
			exec.Command(fam, "-w", "-t", "nat", "-F", c).Run()
			exec.Command(fam, "-w", "-t", "nat", "-X", c).Run()
		}
	}
}

// splitRule splits an iptables-save rule into arguments; comments are in
// double quotes.
func splitRule(rule string) []string {
	var args []string
	for i, part := range strings.Split(rule, `"`) {
		if i%2 == 1 {
			args = append(args, part)
		} else {
			args = append(args, strings.Fields(part)...)
		}
	}
	return args
}

// natRulesFor lists nat rules that name the pod (portmap tags its rules
// with the sandbox ID).
func natRulesFor(id string) []string {
	var out []string
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		b, _ := exec.Command(cmd, "-t", "nat").Output()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, id) {
				out = append(out, l)
			}
		}
	}
	return out
}

// podAddrs lists the addresses on eth0 inside the network namespace.
func podAddrs(t *testing.T, nsPath string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	err := netns.Do(nsPath, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		addrs, err := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(ipn.IP)
				out = append(out, ip.Unmap())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostnameIn reads the hostname inside a pinned UTS namespace. The thread
// that enters it is never unlocked, so the runtime discards it.
func hostnameIn(t *testing.T, utsPath string) string {
	t.Helper()
	type res struct {
		name string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(utsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
			ch <- res{err: err}
			return
		}
		var u unix.Utsname
		err = unix.Uname(&u)
		ch <- res{name: unix.ByteSliceToString(u.Nodename[:]), err: err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.name
}

// podConfig is a minimal pod with its own namespaces.
func podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "sb-test", Uid: "uid-" + name, Attempt: 1},
		Hostname: name,
		Labels:   map[string]string{"app": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
		}},
	}
}

// hostPod is a pod in the host's network and IPC namespaces: it needs no
// root and no CNI.
func hostPod(name string) *runtimeapi.PodSandboxConfig {
	c := podConfig(name)
	c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	c.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
	return c
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

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
