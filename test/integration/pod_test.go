package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testnet"
)

// testNet is this test process's own bridge and subnet, so that two runs of
// the suite on one host do not share a bridge.
var (
	testNet    = testnet.MustLease()
	testBridge = testNet.Bridge
	testSubnet = testNet.V4.String()
)

// withTestNetwork writes a bridge + host-local + portmap + loopback conflist
// into the daemon's CNI dir and removes the bridge afterwards.
func withTestNetwork(t *testing.T, d *daemon) {
	t.Helper()
	for _, bin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", bin)); err != nil {
			t.Skipf("CNI plugin %s missing (apt-get install containernetworking-plugins)", bin)
		}
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cradle-it","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true},"snat":true},
 {"type":"loopback"}]}`, testBridge, testSubnet, filepath.Join(d.dir, "ipam"))
	dir := filepath.Join(d.dir, "cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-cradle-it.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", testBridge).Run() })
}

func podConfig(name string, pid runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "it", Uid: "uid-" + name},
		Hostname: name,
		Labels:   map[string]string{"app": name, "suite": "it"},
		DnsConfig: &runtimeapi.DNSConfig{
			Servers: []string{"10.96.0.10"}, Searches: []string{"it.svc.cluster.local"},
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: pid},
		}},
	}
}

func TestPodSandboxLifecycleThroughCRI(t *testing.T) {
	needRoot(t)
	d := newDaemonFiles(t, daemonOpts{extraConfig: "[runtime]\npod_shm_size = 8388608\n"})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()

	id, err := d.Runtime.RunPodSandbox(ctx, podConfig("web", runtimeapi.NamespaceMode_CONTAINER), "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Runtime.PodSandboxStatus(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	s := st.GetStatus()
	if s.State != runtimeapi.PodSandboxState_SANDBOX_READY || s.Metadata.GetName() != "web" || s.CreatedAt == 0 {
		t.Fatalf("status = %v", s)
	}
	ip, err := netip.ParseAddr(s.GetNetwork().GetIp())
	if err != nil || !netip.MustParsePrefix(testSubnet).Contains(ip) {
		t.Fatalf("pod IP %q not in %s", s.GetNetwork().GetIp(), testSubnet)
	}
	var info struct{ Netns, Shm string }
	if err := json.Unmarshal([]byte(st.GetInfo()["info"]), &info); err != nil || info.Netns == "" {
		t.Errorf("verbose info lacks namespaces: %v %v", st.GetInfo(), err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(info.Shm, &sfs); err != nil || uint64(sfs.Blocks)*uint64(sfs.Bsize) != 8<<20 {
		t.Errorf("pod /dev/shm at %q: %d bytes (%v), want the configured 8 MiB", info.Shm, uint64(sfs.Blocks)*uint64(sfs.Bsize), err)
	}

	// The same metadata again is a different pod: refused.
	other := podConfig("web", runtimeapi.NamespaceMode_CONTAINER)
	other.Hostname = "changed"
	if _, err := d.Runtime.RunPodSandbox(ctx, other, ""); status.Code(err) != codes.AlreadyExists {
		t.Errorf("second pod with the same name: %v", err)
	}

	// A pod sharing one PID namespace gets a catatonit init under runc.
	shared, err := d.Runtime.RunPodSandbox(ctx, podConfig("shared", runtimeapi.NamespaceMode_POD), "")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		filter *runtimeapi.PodSandboxFilter
		want   []string
	}{
		{nil, []string{id, shared}},
		{&runtimeapi.PodSandboxFilter{Id: id[:12]}, []string{id}},
		{&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "shared"}}, []string{shared}},
		{&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}}, nil},
	} {
		items, err := d.Runtime.ListPodSandbox(ctx, tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, it := range items {
			got = append(got, it.Id)
		}
		if strings.Join(sorted(got), ",") != strings.Join(sorted(tc.want), ",") {
			t.Errorf("ListPodSandbox(%v) = %v, want %v", tc.filter, got, tc.want)
		}
	}

	// A restart finds both pods ready with the same IP.
	d.stop()
	d.start()
	st, err = d.Runtime.PodSandboxStatus(ctx, id, false)
	if err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || st.GetStatus().GetNetwork().GetIp() != ip.String() {
		t.Fatalf("after restart: %v %v", st.GetStatus(), err)
	}

	for _, p := range []string{id, shared} {
		if err := d.Runtime.StopPodSandbox(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := d.Runtime.StopPodSandbox(ctx, p); err != nil {
			t.Fatalf("second StopPodSandbox: %v", err)
		}
		st, err := d.Runtime.PodSandboxStatus(ctx, p, false)
		if err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			t.Fatalf("after stop: %v %v", st, err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, p); err != nil {
			t.Fatalf("second RemovePodSandbox: %v", err)
		}
		if _, err := d.Runtime.PodSandboxStatus(ctx, p, false); status.Code(err) != codes.NotFound {
			t.Errorf("status of a removed pod: %v", err)
		}
	}
	// Stopping and removing unknown pods succeeds (idempotence, as critest checks).
	if err := d.Runtime.StopPodSandbox(ctx, "0123456789abcdef"); err != nil {
		t.Errorf("StopPodSandbox(unknown): %v", err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, "0123456789abcdef"); err != nil {
		t.Errorf("RemovePodSandbox(unknown): %v", err)
	}
	// Nothing is left: no namespace pins or pod files, no IP lease.
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), d.state) {
		t.Errorf("mounts left under %s", d.state)
	}
	leases, _ := filepath.Glob(filepath.Join(d.dir, "ipam", "cradle-it", "10.*"))
	if len(leases) != 0 {
		t.Errorf("IP leases left: %v", leases)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "pods")); len(entries) != 0 {
		t.Errorf("pod records left: %d", len(entries))
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestPodSandboxFailuresLeaveNothing(t *testing.T) {
	needRoot(t)
	pluginDir := filepath.Join(t.TempDir(), "cnibin")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A plugin that fails ADD after bridge and host-local have done their
	// part, and succeeds at DEL, as a real plugin would on the rollback.
	failer := `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":100,"msg":"planned failure from the test plugin"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
*) exit 0 ;;
esac
`
	if err := os.WriteFile(filepath.Join(pluginDir, "failer"), []byte(failer), 0o755); err != nil {
		t.Fatal(err)
	}
	d := newDaemonFiles(t, daemonOpts{})
	// A drop-in adds the plugin dir (and shows drop-ins reach the daemon).
	dropIn := fmt.Sprintf("[cni]\nplugin_dirs = [%q, \"/usr/lib/cni\"]\n", pluginDir)
	if err := os.MkdirAll(filepath.Join(d.dir, "cradle.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "cradle.d", "10-cni.toml"), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	withTestNetwork(t, d)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cradle-it","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"failer"}]}`, testBridge, testSubnet, filepath.Join(d.dir, "ipam"))
	if err := os.WriteFile(filepath.Join(d.dir, "cni", "10-cradle-it.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	ctx := context.Background()

	_, err := d.Runtime.RunPodSandbox(ctx, podConfig("cnifail", runtimeapi.NamespaceMode_CONTAINER), "")
	if err == nil || !strings.Contains(err.Error(), "planned failure from the test plugin") {
		t.Fatalf("RunPodSandbox with a failing plugin = %v", err)
	}
	_, err = d.Runtime.RunPodSandbox(ctx, podConfig("nohandler", runtimeapi.NamespaceMode_CONTAINER), "kata-not-here")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kata-not-here") {
		t.Errorf("unknown runtime handler: %v", err)
	}
	if items, _ := d.Runtime.ListPodSandbox(ctx, nil); len(items) != 0 {
		t.Errorf("pods after failed runs: %v", items)
	}
	leases, _ := filepath.Glob(filepath.Join(d.dir, "ipam", "cradle-it", "10.*"))
	if len(leases) != 0 {
		t.Errorf("IP leases left after a failed CNI ADD: %v", leases)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), d.state) {
		t.Errorf("mounts left under %s", d.state)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "pods")); len(entries) != 0 {
		t.Errorf("pod records left: %d", len(entries))
	}
}

// podWithImage starts a daemon with the test network, pulls imageName and
// runs a pod named name that logs under the returned directory.
func podWithImage(t *testing.T, name, imageName string) (d *daemon, pod *runtimeapi.PodSandboxConfig, podID, logDir string) {
	t.Helper()
	d = newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageName), nil, nil); err != nil {
		t.Fatal(err)
	}
	logDir = filepath.Join(d.dir, "logs")
	pod = podConfig(name, runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = logDir
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	return d, pod, podID, logDir
}
