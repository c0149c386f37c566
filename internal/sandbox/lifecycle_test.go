package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
)

func TestRunStopRemove(t *testing.T) {
	e := newEnv(t, true)
	m := e.manager(t)
	ctx := context.Background()
	cfg := podConfig("web")
	cfg.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}}
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 18091}}
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	cfg.Annotations = map[string]string{"a": "b"}

	id, err := m.Run(ctx, cfg, "runc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Status(id[:12])
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != id || s.State != Ready || s.Handler != "runc" || s.Name != "k8s_POD_web_sb-test_uid-web_1" ||
		s.Annotations()["a"] != "b" || s.Labels()["app"] != "web" || s.Metadata().GetUid() != "uid-web" || s.CreatedAt.IsZero() {
		t.Fatalf("status = %+v", s)
	}
	// Dual stack: IPv4 primary, IPv6 additional, both in the test ranges and
	// both really on eth0 inside the pod's netns.
	if len(s.IPs) != 2 || !netip.MustParsePrefix(testSubnet4).Contains(s.IPs[0]) || !netip.MustParsePrefix(testSubnet6).Contains(s.IPs[1]) {
		t.Fatalf("IPs = %v", s.IPs)
	}
	inNS := podAddrs(t, s.NetNS)
	for _, ip := range s.IPs {
		if !slices.Contains(inNS, ip) {
			t.Errorf("%s not on eth0 in the pod netns (%v)", ip, inNS)
		}
	}
	if got := hostnameIn(t, s.UTSNS); got != "web" {
		t.Errorf("hostname in UTS pin = %q", got)
	}
	if got := readFile(t, s.Hostname); got != "web\n" {
		t.Errorf("hostname file = %q", got)
	}
	wantResolv := "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5\n"
	if got := readFile(t, s.ResolvConf); got != wantResolv {
		t.Errorf("resolv.conf = %q", got)
	}
	if h := readFile(t, s.Hosts); !strings.Contains(h, s.IPs[0].String()+"\tweb\n") || !strings.Contains(h, "127.0.0.1\tlocalhost") {
		t.Errorf("hosts = %q", h)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.Shm, &st); err != nil || st.Type != unix.TMPFS_MAGIC || int64(st.Blocks)*st.Bsize != 8<<20 {
		t.Errorf("shm: %v type %x size %d", err, st.Type, int64(st.Blocks)*st.Bsize)
	}
	if mnt, _ := isMountPoint(s.Shm); !mnt {
		t.Error("shm is not a mount point")
	}
	var sysctl string
	netns.Do(s.NetNS, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
		sysctl = strings.TrimSpace(string(b))
		return err
	})
	if sysctl != "0" {
		t.Errorf("sysctl in pod netns = %q", sysctl)
	}
	if len(natRulesFor(id)) == 0 {
		t.Error("no port mapping rules for the pod")
	}
	if _, err := os.Stat(filepath.Join(e.root, "pods", id+".json")); err != nil {
		t.Errorf("record: %v", err)
	}

	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	s, _ = m.Get(id)
	if s.State != NotReady {
		t.Fatalf("state after stop = %s", s.State)
	}
	if netns.Exists(s.NetNS) || netns.Exists(s.UTSNS) || netns.Exists(s.IPCNS) {
		t.Error("namespaces still pinned after stop")
	}
	if mps := mountsUnder(t, e.state); len(mps) > 0 {
		t.Errorf("mounts after stop: %v", mps)
	}
	if l := e.leases(t); len(l) > 0 {
		t.Errorf("leases after stop: %v", l)
	}
	if r := natRulesFor(id); len(r) > 0 {
		t.Errorf("nat rules after stop: %v", r)
	}
	if err := m.Stop(ctx, id); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "pods", id+".json")); err != nil {
		t.Errorf("record gone after stop: %v", err)
	}

	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	_, err = m.Get(id)
	wantKind(t, err, errdefs.ErrNotFound)
	wantKind(t, m.Stop(ctx, id), errdefs.ErrNotFound)
	if l := m.List(Filter{}); len(l) != 0 {
		t.Errorf("list after remove: %v", l)
	}
	e.assertNoTrace(t)
}

// A host-network, host-IPC pod needs no CNI (the manager has none) and
// gets the host's files.
func TestHostNetworkPod(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	ctx := context.Background()
	cfg := hostPod("hostnet")
	cfg.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 80}} // kubelet sends them; ignored
	id, err := m.Run(ctx, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	if s.NetNS != "" || s.UTSNS != "" || s.IPCNS != "" || s.Shm != "" || len(s.IPs) != 0 || s.Network != nil {
		t.Fatalf("host pod has pod namespaces: %+v", s)
	}
	host, _ := os.Hostname()
	if got := readFile(t, s.Hostname); got != host+"\n" {
		t.Errorf("hostname file = %q, want the host's %q", got, host)
	}
	if got := readFile(t, s.Hosts); got != readFile(t, e.cfg.HostHosts) {
		t.Errorf("hosts = %q", got)
	}
	if got := readFile(t, s.ResolvConf); got != readFile(t, e.cfg.HostResolvConf) {
		t.Errorf("resolv.conf = %q", got)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)

	// A pod with its own network cannot run without CNI, and says why.
	_, err = m.Run(ctx, podConfig("needsnet"), "")
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	e.assertNoTrace(t)
}

// A host-network pod with its own IPC namespace gets a pinned IPC
// namespace and shm, but no network or UTS pin.
func TestHostNetworkOwnIPC(t *testing.T) {
	needRoot(t)
	e := newEnv(t, false)
	m := e.manager(t)
	cfg := hostPod("ipc")
	cfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_POD
	cfg.Linux.Sysctls = map[string]string{"kernel.shmmax": "1000000"}
	id, err := m.Run(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	if !netns.Exists(s.IPCNS) || s.NetNS != "" || s.UTSNS != "" {
		t.Fatalf("pins: %+v", s)
	}
	if mnt, _ := isMountPoint(s.Shm); !mnt {
		t.Fatal("no shm mount")
	}
	if err := m.Remove(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

func TestRestartFindsReadyPod(t *testing.T) {
	e := newEnv(t, true)
	obs := &podCounts{}
	e.cfg.Observer = obs
	ctx := context.Background()
	m1 := e.manager(t)
	id, err := m1.Run(ctx, podConfig("survivor"), "")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := m1.Get(id)
	if ready, _ := obs.get(); len(ready) != 1 || ready[0] <= 0 {
		t.Errorf("pod start durations observed: %v, want one", ready)
	}
	if n := m1.CountByState(); n[Ready] != 1 || len(n) != 1 {
		t.Errorf("count by state = %v, want one ready pod", n)
	}

	m2 := e.manager(t) // m1 is abandoned, as by a daemon restart
	if _, rec := obs.get(); rec["pod ok"] != 1 || len(rec) != 1 {
		t.Errorf("recovered = %v, want one pod ok", rec)
	}
	after, err := m2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != Ready || !slices.Equal(after.IPs, before.IPs) || !after.CreatedAt.Equal(before.CreatedAt) || after.Name != before.Name {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if !netns.Exists(after.NetNS) || !slices.Contains(podAddrs(t, after.NetNS), after.IPs[0]) {
		t.Fatal("pod netns lost its address across the restart")
	}
	// The name is still taken after the restart.
	other := podConfig("survivor")
	other.Labels["x"] = "y"
	_, err = m2.Run(ctx, other, "")
	wantKind(t, err, errdefs.ErrAlreadyExists)
	if err := m2.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n := m2.CountByState(); len(n) != 0 {
		t.Errorf("count by state after Remove = %v", n)
	}
	e.assertNoTrace(t)
}

// After a reboot the state dir is empty: namespaces and mounts are gone but
// the record and the IP lease are not. The restart must stop the pod and
// free the lease through CNI DEL.
func TestRestartAfterReboot(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	m1 := e.manager(t)
	id, err := m1.Run(ctx, podConfig("rebooted"), "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m1.Get(id)
	unix.Unmount(s.Shm, unix.MNT_DETACH)
	if err := netns.Unpin(filepath.Dir(s.NetNS)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(e.state, "pods"))
	if len(e.leases(t)) == 0 {
		t.Fatal("test setup: lease should survive the 'reboot'")
	}

	m2 := e.manager(t)
	s, err = m2.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != NotReady {
		t.Fatalf("state after reboot = %s", s.State)
	}
	if l := e.leases(t); len(l) > 0 {
		t.Errorf("leases after recovery: %v", l)
	}
	if err := m2.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// Stop and Remove succeed when someone already removed the namespaces.
func TestStopAfterManualUnpin(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	m := e.manager(t)
	id, err := m.Run(ctx, podConfig("unpinned"), "")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	if err := netns.Unpin(filepath.Dir(s.NetNS)); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l := e.leases(t); len(l) > 0 {
		t.Errorf("leases after stop: %v", l)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// Stop stops the containers first; if that fails the pod is left as it
// was, READY, and Remove fails the same way.
func TestStopContainersHook(t *testing.T) {
	e := newEnv(t, false)
	var calls []string
	fail := true
	e.cfg.StopContainers = func(ctx context.Context, id string) error {
		calls = append(calls, id)
		if fail {
			return errdefs.Unavailable("runtime busy")
		}
		return nil
	}
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, hostPod("hooked"), "")
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, m.Stop(ctx, id), errdefs.ErrUnavailable)
	wantKind(t, m.Remove(ctx, id), errdefs.ErrUnavailable)
	if s, _ := m.Get(id); s.State != Ready {
		t.Fatalf("state after a failed stop = %s", s.State)
	}
	fail = false
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2] != id {
		t.Fatalf("hook calls = %v", calls)
	}
	e.assertNoTrace(t)
}

func TestVerboseInfo(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	id, err := m.Run(context.Background(), hostPod("verbose"), "runc")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := m.Get(id)
	info, err := s.VerboseInfo()
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ID         string            `json:"id"`
		Handler    string            `json:"runtimeHandler"`
		Namespaces map[string]string `json:"namespaces"`
		Config     struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(info["info"]), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != id || v.Handler != "runc" || v.Namespaces["network"] != "host" || v.Config.Metadata.Name != "verbose" {
		t.Fatalf("info = %s", info["info"])
	}
}

// Pods run and go in parallel; each gets its own address.
func TestParallelPods(t *testing.T) {
	e := newEnv(t, true)
	m := e.manager(t)
	ctx := context.Background()
	const n = 4
	ids := make([]string, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			ids[i], err = m.Run(ctx, podConfig(fmt.Sprintf("par%d", i)), "")
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, s := range m.List(Filter{State: Ready}) {
		if len(s.IPs) == 0 || seen[s.IPs[0]] {
			t.Fatalf("pod %s: IPs %v (seen %v)", s.ID, s.IPs, seen)
		}
		seen[s.IPs[0]] = true
	}
	if len(seen) != n {
		t.Fatalf("%d ready pods with addresses, want %d", len(seen), n)
	}
	for _, id := range ids {
		go func() { errs <- m.Remove(ctx, id) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.assertNoTrace(t)
}
