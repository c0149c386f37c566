package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestDaemonServesVersionStatusRuntimeConfig(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()

	v, err := d.Runtime.Version(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "cradle" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Errorf("Version = %+v", v)
	}

	st, err := d.Runtime.Status(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtimeapi.RuntimeCondition{}
	for _, c := range st.GetStatus().GetConditions() {
		conds[c.Type] = c
	}
	if c := conds[runtimeapi.RuntimeReady]; c == nil || !c.Status {
		t.Errorf("RuntimeReady = %+v", c)
	}
	// The test config points at an empty CNI dir: the network is honestly not ready.
	if c := conds[runtimeapi.NetworkReady]; c == nil || c.Status || c.Reason != "NetworkPluginNotReady" {
		t.Errorf("NetworkReady = %+v", c)
	}
	if !strings.Contains(st.GetInfo()["config"], d.root) {
		t.Errorf("verbose Status info lacks the config: %v", st.GetInfo())
	}

	// A CNI config appearing makes the network ready without a restart.
	if err := os.MkdirAll(filepath.Join(d.dir, "cni"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "cni", "10-test.conflist"), []byte(`{"cniVersion":"1.0.0","name":"lo-only","plugins":[{"type":"loopback"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = d.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.NetworkReady && !c.Status {
			t.Errorf("NetworkReady still false with a CNI config present: %+v", c)
		}
	}

	rc, err := d.Runtime.RuntimeConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("cgroup driver = %v", rc.GetLinux().GetCgroupDriver())
	}
}

// Every RPC of the API does real work: bad requests get InvalidArgument or
// NotFound, never Unimplemented.
func TestBadRequestsAnswerTheirCodeNotUnimplemented(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	_, err := d.Runtime.RunPodSandbox(ctx, &runtimeapi.PodSandboxConfig{}, "")
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "metadata") {
		t.Fatalf("RunPodSandbox without metadata: %v", err)
	}
	err = d.Runtime.CheckpointContainer(ctx, &runtimeapi.CheckpointContainerRequest{ContainerId: "nope", Location: "/tmp/x.tar"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("CheckpointContainer of an unknown container: %v", err)
	}
	err = d.Runtime.UpdateContainerResources(ctx, "nope", &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("UpdateContainerResources of an unknown container: %v", err)
	}
	if _, err = d.Runtime.PodSandboxStats(ctx, "nope"); status.Code(err) != codes.NotFound {
		t.Fatalf("PodSandboxStats of an unknown pod: %v", err)
	}
	err = d.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.0.0.0/99"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("UpdateRuntimeConfig with a bad CIDR: %v", err)
	}
}

func TestSystemdCgroupDriverFromConfig(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{extraConfig: "[runtime]\ncgroup_driver = \"systemd\"\n"})
	rc, err := d.Runtime.RuntimeConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_SYSTEMD {
		t.Errorf("cgroup driver = %v", rc.GetLinux().GetCgroupDriver())
	}
}

func TestSecondDaemonOnSameRootRefuses(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	other := filepath.Join(d.dir, "other.toml")
	conf, _ := os.ReadFile(d.config)
	conf = []byte(strings.Replace(string(conf), d.socket, filepath.Join(d.dir, "other.sock"), 1))
	if err := os.WriteFile(other, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "daemon", "--config", other).CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon started:\n%s", out)
	}
	if err := contains(string(out), "another cradle daemon", d.root); err != nil {
		t.Error(err)
	}
	// The first one is unharmed.
	if _, err := d.Runtime.Version(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocketIsReplacedLiveOneIsNot(t *testing.T) {
	needRoot(t)
	d := newDaemonFiles(t, daemonOpts{})
	// A crashed daemon leaves its socket file behind.
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(d.socket); err != nil {
		t.Fatal("stale socket not left behind")
	}
	d.start()
	fi, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want 0660", fi.Mode().Perm())
	}

	// A socket someone still serves is not stolen by a daemon on another root.
	other := newDaemonFiles(t, daemonOpts{})
	conf, _ := os.ReadFile(other.config)
	conf = []byte(strings.Replace(string(conf), other.socket, d.socket, 1))
	if err := os.WriteFile(other.config, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "daemon", "--config", other.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("daemon on another root took a live socket: err=%v\n%s", err, out)
	}
	if _, err := d.Runtime.Version(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestSIGTERMShutsDownCleanlyAndRestarts(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	d.stop()
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Errorf("socket left after clean shutdown: %v", err)
	}
	// The lock was released: the same root starts again.
	d2 := startDaemon(t, daemonOpts{dir: d.dir})
	if _, err := d2.Runtime.Version(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigFailsStartupNamingFileAndKey(t *testing.T) {
	needRoot(t)
	d := newDaemonFiles(t, daemonOpts{extraConfig: "[stream]\nprot = 10010\n"})
	cmd := exec.Command(binary(t), "daemon", "--config", d.config)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("daemon with a bad config did not exit")
	}
	if err == nil {
		t.Fatal("daemon started with an unknown key")
	}
	if e := contains(string(out), d.config, "stream.prot", "unknown key"); e != nil {
		t.Error(e)
	}
}

func TestConfigCommandPrintsEffectiveConfig(t *testing.T) {
	d := newDaemonFiles(t, daemonOpts{})
	out, err := exec.Command(binary(t), "config", "--config", d.config, "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if e := contains(string(out), "root = '"+d.root+"'", "log_level = 'warn'", "[runtime.handlers.runc]", "stall_timeout"); e != nil {
		t.Error(e)
	}
}
