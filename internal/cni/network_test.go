package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/testnet"
)

// The bridges and subnets are this test process's own, so that two runs of
// the package on one host do not share them.
var (
	lease4  = testnet.MustLease()
	bridge4 = lease4.Bridge
	subnet4 = lease4.V4.String()
	lease6  = testnet.MustLease()
)

func TestSetupAndTeardown(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, portmapPlugin, loopbackPlugin))
	if err := e.net.Ready(); err != nil {
		t.Fatal(err)
	}
	pod := newPod(t, "web")
	ctx := context.Background()

	res, err := e.net.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	ips := res.PodIPs()
	subnet := netip.MustParsePrefix(subnet4)
	if len(ips) != 1 || !subnet.Contains(ips[0]) {
		t.Fatalf("PodIPs = %v, want one address in %s (result %+v)", ips, subnet, res)
	}
	ip := ips[0]
	i := slices.IndexFunc(res.IPs, func(x IP) bool { return x.Address.Addr() == ip })
	if got := res.IPs[i]; got.Interface != IfName || got.Gateway != lease4.Gateway4() || got.Address.Bits() != 24 {
		t.Fatalf("pod IP entry = %+v, want on eth0 with gateway %s, /24", got, lease4.Gateway4())
	}
	if !slices.ContainsFunc(res.Interfaces, func(x Interface) bool { return x.Name == IfName && x.Sandbox == pod.NetnsPath }) {
		t.Fatalf("Interfaces = %+v: no eth0 in the sandbox", res.Interfaces)
	}

	links := podLinks(t, pod.NetnsPath)
	if !containsAddr(links[IfName], ip) {
		t.Fatalf("links in the pod netns = %v, want %s on eth0", links, ip)
	}
	if _, ok := links["lo"]; !ok {
		t.Fatalf("no lo in the pod netns: %v", links)
	}
	if got := e.allocations(t); !slices.Equal(got, []string{ip.String()}) {
		t.Fatalf("host-local allocations = %v, want [%s]", got, ip)
	}
	if b, _ := os.ReadFile(filepath.Join(e.dataDir, testNetName, ip.String())); !strings.Contains(string(b), pod.ID) {
		t.Fatalf("allocation file holds %q, not the pod ID", b)
	}
	if got := bridgePorts(t, bridge4); len(got) != 1 {
		t.Fatalf("bridge ports = %v, want the pod's veth", got)
	}
	if got := e.cacheEntries(t); len(got) != 1 || !strings.Contains(got[0], pod.ID) {
		t.Fatalf("cache = %v, want one entry for the pod", got)
	}
	if ids, err := e.net.Attached(); err != nil || !slices.Equal(ids, []string{pod.ID}) {
		t.Fatalf("Attached = %v, %v", ids, err)
	}

	// A repeated Setup is refused and leaves the attachment alone.
	_, err = e.net.Setup(ctx, pod)
	wantKind(t, err, errdefs.ErrAlreadyExists)
	if !containsAddr(podLinks(t, pod.NetnsPath)[IfName], ip) || !slices.Equal(e.allocations(t), []string{ip.String()}) {
		t.Fatal("a refused second Setup disturbed the first attachment")
	}

	// The pod reaches its gateway (the host side of the bridge).
	if err := netns.Do(pod.NetnsPath, func() error {
		c, err := net.DialTimeout("udp", net.JoinHostPort(lease4.Gateway4().String(), "9"), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("route to the gateway: %v", err)
	}

	for i := range 2 {
		if err := e.net.Teardown(ctx, pod); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
		if got := e.allocations(t); len(got) != 0 {
			t.Fatalf("allocations after Teardown = %v", got)
		}
		if got := bridgePorts(t, bridge4); len(got) != 0 {
			t.Fatalf("bridge ports after Teardown = %v", got)
		}
		if got := e.cacheEntries(t); len(got) != 0 {
			t.Fatalf("cache after Teardown = %v", got)
		}
		if _, ok := podLinks(t, pod.NetnsPath)[IfName]; ok {
			t.Fatal("eth0 still in the pod netns")
		}
		if ids, err := e.net.Attached(); err != nil || len(ids) != 0 {
			t.Fatalf("Attached after Teardown = %v, %v", ids, err)
		}
	}
	// And once the netns itself is gone.
	if err := netns.Unpin(filepath.Dir(pod.NetnsPath)); err != nil {
		t.Fatal(err)
	}
	if err := e.net.Teardown(ctx, pod); err != nil {
		t.Fatalf("Teardown after unpin: %v", err)
	}
}

// TestTeardownAfterRestartUsesCache: the daemon restarted (a new Network on
// the same cache dir), the conf dir was emptied and the netns is gone; DEL
// must still release the address and the host-side veth.
func TestTeardownAfterRestartUsesCache(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, loopbackPlugin))
	pod := newPod(t, "cached")
	ctx := context.Background()
	if _, err := e.net.Setup(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if len(e.allocations(t)) != 1 {
		t.Fatal("no allocation")
	}

	if err := netns.Unpin(filepath.Dir(pod.NetnsPath)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(e.confDir, "10-test.conflist"))
	restarted, err := New(e.confDir, []string{e.fakeDir, systemPlugins}, e.cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	if restarted.Ready() == nil {
		t.Fatal("Ready with an empty conf dir")
	}
	if err := restarted.Teardown(ctx, pod); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations = %v: DEL did not run from the cache", got)
	}
	// With the netns gone the veth pair went with it; the bridge is empty.
	eventually(t, "the bridge has no ports", func() bool { return len(bridgePorts(t, bridge4)) == 0 })
	if err := restarted.Teardown(ctx, pod); err != nil {
		t.Fatalf("Teardown with neither cache nor config: %v", err)
	}
}

func TestTeardownWithoutCacheUsesCurrentConfig(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, loopbackPlugin))
	pod := newPod(t, "nocache")
	ctx := context.Background()
	if _, err := e.net.Setup(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(e.cacheDir, "results")); err != nil {
		t.Fatal(err)
	}
	if err := e.net.Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations = %v", got)
	}
	if got := bridgePorts(t, bridge4); len(got) != 0 {
		t.Fatalf("bridge ports = %v", got)
	}
}

func TestFailingPluginIsNamedAndRolledBack(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	cases := []struct {
		code uint
		kind error
	}{
		{11, errdefs.ErrUnavailable},       // try again later
		{999, errdefs.ErrUnavailable},      // internal
		{7, errdefs.ErrFailedPrecondition}, // invalid network config
		{1, errdefs.ErrFailedPrecondition}, // incompatible CNI version
		{4, errdefs.ErrInvalidArgument},    // invalid environment variables
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("code %d", c.code), func(t *testing.T) {
			e := newEnv(t)
			e.fakePlugin(t, "failer", fmt.Sprintf(
				`ADD) echo '{"cniVersion": "1.0.0", "code": %d, "msg": "failer says no", "details": "injected by the test"}'; exit 1 ;;`, c.code))
			e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, `{"type": "failer"}`))
			pod := newPod(t, "failing")
			_, err := e.net.Setup(context.Background(), pod)
			wantKind(t, err, c.kind)
			wantContains(t, err, `type="failer"`, "failer says no", "injected by the test", pod.ID, testNetName)
			if got := e.allocations(t); len(got) != 0 {
				t.Fatalf("allocations after a failed Setup = %v: not rolled back", got)
			}
			if got := bridgePorts(t, bridge4); len(got) != 0 {
				t.Fatalf("bridge ports after a failed Setup = %v", got)
			}
			if got := e.cacheEntries(t); len(got) != 0 {
				t.Fatalf("cache after a failed Setup = %v", got)
			}
		})
	}
}

func TestPluginWithoutJSONErrorIsReported(t *testing.T) {
	needNetwork(t)
	e := newEnv(t)
	e.fakePlugin(t, "crashy", `ADD) echo "segfault-ish trouble" >&2; exit 139 ;;`)
	e.writeConf(t, "10.conflist", chain(testNetName, "crashy"))
	_, err := e.net.Setup(context.Background(), newPod(t, "crashy"))
	wantKind(t, err, errdefs.ErrUnavailable)
	wantContains(t, err, `type="crashy"`, "exit status 139", "segfault-ish trouble")
}

// TestSetupCancelKillsPluginAndItsChildren: a plugin that hangs in a child
// process holding its stdout. Ending ctx must end the call, kill the whole
// process group and still roll the bridge's address back.
func TestSetupCancelKillsPluginAndItsChildren(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	pidFile := filepath.Join(t.TempDir(), "sleep.pid")
	e.fakePlugin(t, "hang", `ADD) sleep 300 & echo $! > `+pidFile+`; wait; exit 1 ;;`)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, `{"type": "hang"}`))
	pod := newPod(t, "hang")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.net.Setup(ctx, pod); done <- err }()
	var pid int
	eventually(t, "the plugin started its child", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0
	})
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("Setup outlived its context by a minute: the plugin's child held it")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v does not wrap context.Canceled", err)
	}
	wantContains(t, err, `type="hang"`)
	eventually(t, "the plugin's child is killed", func() bool {
		return syscall.Kill(pid, 0) == syscall.ESRCH
	})
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations after a cancelled Setup = %v", got)
	}
	if got := bridgePorts(t, bridge4); len(got) != 0 {
		t.Fatalf("bridge ports after a cancelled Setup = %v", got)
	}
}

func TestExpiredDeadlineIsDeadlineExceeded(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}))
	pod := newPod(t, "late")
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := e.net.Setup(ctx, pod)
	wantKind(t, err, errdefs.ErrDeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations = %v", got)
	}
	err = e.net.Teardown(ctx, pod)
	wantKind(t, err, errdefs.ErrDeadlineExceeded)
}

func TestSetupWithoutConfig(t *testing.T) {
	needNetwork(t)
	e := newEnv(t)
	_, err := e.net.Setup(context.Background(), newPod(t, "x"))
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, "no CNI network config")

	e.writeConf(t, "10.conflist", chain(testNetName, "loopback", "missingplugin"))
	_, err = e.net.Setup(context.Background(), newPod(t, "y"))
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, "missingplugin")
}

func TestSetupRejectsUnpinnedNetns(t *testing.T) {
	needNetwork(t)
	e := newEnv(t)
	e.writeConf(t, "10.conflist", chain(testNetName, "loopback"))
	pod := newPod(t, "gone")
	if err := netns.Unpin(filepath.Dir(pod.NetnsPath)); err != nil {
		t.Fatal(err)
	}
	_, err := e.net.Setup(context.Background(), pod)
	wantKind(t, err, errdefs.ErrFailedPrecondition)
}

func TestConcurrentPods(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, portmapPlugin, loopbackPlugin))
	pods := make([]PodNet, 4)
	for i := range pods {
		pods[i] = newPod(t, fmt.Sprintf("p%d", i))
	}
	run := func(f func(p PodNet) error) {
		var wg sync.WaitGroup
		errs := make([]error, len(pods))
		for i, p := range pods {
			wg.Go(func() { errs[i] = f(p) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[netip.Addr]bool{}
	run(func(p PodNet) error {
		res, err := e.net.Setup(context.Background(), p)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ip := range res.PodIPs() {
			if seen[ip] {
				return fmt.Errorf("address %s handed out twice", ip)
			}
			seen[ip] = true
		}
		return nil
	})
	if len(seen) != len(pods) || len(e.allocations(t)) != len(pods) {
		t.Fatalf("addresses %v, allocations %v", seen, e.allocations(t))
	}
	run(func(p PodNet) error { return e.net.Teardown(context.Background(), p) })
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations = %v", got)
	}
}

// TestPortMappingOnLoopback: a server listening inside the pod is reached
// from the host at 127.0.0.1:hostPort through portmap's DNAT (with snat and
// route_localnet, which connections from localhost need); DEL removes it.
func TestPortMappingOnLoopback(t *testing.T) {
	needNetwork(t)
	useBridge(t, bridge4, subnet4)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge4, []string{subnet4}, portmapPlugin, loopbackPlugin))
	pod := newPod(t, "server")
	hostPort := freePort(t)
	pod.PortMappings = []PortMapping{{HostPort: int32(hostPort), ContainerPort: 8080, Protocol: "TCP", HostIP: "127.0.0.1"}}
	ctx := context.Background()
	res, err := e.net.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.net.Teardown(ctx, pod) })
	if len(natRulesFor(t, pod.ID)) == 0 {
		t.Fatal("portmap installed no nat rule naming the pod")
	}

	podIP := res.PodIPs()[0]
	var ln net.Listener
	if err := netns.Do(pod.NetnsPath, func() (err error) {
		ln, err = net.Listen("tcp", ":8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "pod %s saw %s", podIP, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
	var body string
	eventually(t, "the pod answers on 127.0.0.1:"+strconv.Itoa(hostPort), func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return true
	})
	if !strings.HasPrefix(body, "pod "+podIP.String()+" saw "+lease4.Gateway4().String()+":") {
		t.Fatalf("answer %q: want it from the pod, with the connection masqueraded to the bridge address", body)
	}

	if err := e.net.Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := natRulesFor(t, pod.ID); len(got) != 0 {
		t.Fatalf("nat rules left after Teardown: %v", got)
	}
	if _, err := client.Get(url); err == nil {
		t.Fatal("host port still forwarded after Teardown")
	}
}

// freePort finds a TCP port on 127.0.0.1 nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestDualStack(t *testing.T) {
	needNetwork(t)
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err != nil || strings.TrimSpace(string(b)) != "0" {
		t.Skip("IPv6 is disabled on this host")
	}
	bridge6, sub4, sub6 := lease6.Bridge, lease6.V4.String(), lease6.V6.String()
	useBridge(t, bridge6, sub4, sub6)
	e := newEnv(t)
	e.writeConf(t, "10-test.conflist", e.bridgeNet(bridge6, []string{sub4, sub6}, loopbackPlugin))
	pod := newPod(t, "dual")
	ctx := context.Background()
	res, err := e.net.Setup(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	ips := res.PodIPs()
	if len(ips) != 2 || !netip.MustParsePrefix(sub4).Contains(ips[0]) || !netip.MustParsePrefix(sub6).Contains(ips[1]) {
		t.Fatalf("PodIPs = %v, want an IPv4 in %s then an IPv6 in %s", ips, sub4, sub6)
	}
	links := podLinks(t, pod.NetnsPath)
	for _, ip := range ips {
		if !containsAddr(links[IfName], ip) {
			t.Fatalf("eth0 in the pod has %v, want %s", links[IfName], ip)
		}
	}
	if len(e.allocations(t)) != 2 {
		t.Fatalf("allocations = %v", e.allocations(t))
	}
	if err := e.net.Teardown(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if got := e.allocations(t); len(got) != 0 {
		t.Fatalf("allocations = %v", got)
	}
}
