package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/config"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
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
	// Pods found in the wild: refused before anything is made.
	for _, name := range []string{"x/../../y", strings.Repeat("x", 70000)} {
		cfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: "u1"}}
		_, err := d.Runtime.RunPodSandbox(ctx, cfg, "")
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.metadata.name") {
			t.Fatalf("RunPodSandbox of a pod named %.20q…: %v", name, err)
		}
	}
	if pods, err := d.Runtime.ListPodSandbox(ctx, nil); err != nil || len(pods) != 0 {
		t.Fatalf("pods after refused runs: %v, %v", pods, err)
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
	// Bounded: a daemon that wrongly starts would otherwise serve forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "daemon", "--config", other).CombinedOutput()
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

// A daemon on another root but the same state dir would take the first
// one's pods and containers there for a crash's orphans: it must not start.
func TestSecondDaemonOnSameStateRefuses(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	other := newDaemonFiles(t, daemonOpts{})
	conf, _ := os.ReadFile(other.config)
	conf = []byte(strings.Replace(string(conf), other.state, d.state, 1))
	if err := os.WriteFile(other.config, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	// Bounded: a daemon that wrongly starts would otherwise serve forever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "daemon", "--config", other.config).CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon on the same state dir started:\n%s", out)
	}
	if err := contains(string(out), "another cradle daemon", "state dir "+d.state); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(other.socket); !os.IsNotExist(err) {
		t.Errorf("the refused daemon created its socket: %v", err)
	}
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
	failStart := func(wants ...string) {
		t.Helper()
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
			t.Fatal("daemon started with a bad config")
		}
		if e := contains(string(out), wants...); e != nil {
			t.Error(e)
		}
		if _, err := os.Stat(d.root); !os.IsNotExist(err) {
			t.Errorf("a daemon refused by its config created its root: %v", err)
		}
	}
	failStart(d.config, "stream.prot", "unknown key")

	// A good main file with a bad drop-in: the drop-in is named.
	d = newDaemonFiles(t, daemonOpts{})
	dropIn := filepath.Join(config.DropInDir(d.config), "50-typo.toml")
	if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dropIn, []byte("[runtime]\ncgroup_driver = \"upstart\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	failStart(dropIn, "runtime.cgroup_driver", "cgroupfs or systemd")
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

// startRawDaemon runs `cradle daemon args...` under umask 077 (the socket's
// mode must not depend on the caller's umask) and waits until it answers
// Version on socket. It is stopped with SIGTERM at cleanup.
func startRawDaemon(t *testing.T, socket string, args ...string) (*ptyReader, internalapi.RuntimeService) {
	t.Helper()
	log := &ptyReader{}
	cmd := exec.Command("/bin/sh", append([]string{"-c", `umask 077 && exec "$0" "$@"`, binary(t), "daemon"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("daemon ignored SIGTERM")
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", log.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if rt, err := remote.NewRemoteRuntimeService(ctx, "unix://"+socket, 10*time.Second, nil, false); err == nil {
			if _, err := rt.Version(ctx, "v1"); err == nil {
				return log, rt
			}
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("daemon exited during start-up: %v\n%s", err, log.String())
		case <-ctx.Done():
			t.Fatalf("daemon did not answer within 60s\n%s", log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// With no config file anywhere the daemon runs on the built-in defaults
// (only the directories come from flags, to stay off the host's), creates
// the socket's directory and gives the socket mode 0660 under umask 077.
func TestDaemonStartsWithoutConfigFile(t *testing.T) {
	needRoot(t)
	if _, err := os.Stat(filepath.Dir(config.DefaultFile)); err == nil {
		t.Skipf("%s exists on this host: the no-file start cannot be tested here", filepath.Dir(config.DefaultFile))
	}
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	socket := filepath.Join(dir, "not", "yet", "cradle.sock")
	_, rt := startRawDaemon(t, socket, "--root", root, "--state", state, "--socket", socket)

	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660 despite umask 077", fi.Mode())
	}
	rc, err := rt.RuntimeConfig(context.Background())
	if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
		t.Errorf("RuntimeConfig on defaults = %v, %v", rc, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cradle.lock")); err != nil {
		t.Errorf("root lock not under --root: %v", err)
	}

	out, err := exec.Command(binary(t), "config").CombinedOutput()
	if err != nil {
		t.Fatalf("cradle config without a file: %v\n%s", err, out)
	}
	if e := contains(string(out), "# no config file found: built-in defaults", "root = '"+config.DefaultRoot+"'",
		"socket = '"+config.DefaultSocket+"'", "cgroup_driver = 'cgroupfs'"); e != nil {
		t.Error(e)
	}
}

// Every path flag and --log-level win over what the file says: nothing is
// created where the file points.
func TestDaemonFlagsOverrideTheFile(t *testing.T) {
	needRoot(t)
	d := newDaemonFiles(t, daemonOpts{})
	conf, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), `log_level = "debug"`, `log_level = "error"`, 1))
	if err := os.WriteFile(d.config, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	flags := filepath.Join(d.dir, "flags")
	root, state, socket := filepath.Join(flags, "root"), filepath.Join(flags, "state"), filepath.Join(flags, "s.sock")
	log, _ := startRawDaemon(t, socket, "--config", d.config,
		"--root", root, "--state", state, "--socket", socket, "--log-level", "debug")

	for _, p := range []string{d.root, d.state, d.socket} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s (from the file) was created despite the flag: %v", p, err)
		}
	}
	for _, p := range []string{filepath.Join(root, "cradle.lock"), filepath.Join(state, "runtime")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("flag directory not used: %v", err)
		}
	}
	// log_level = "error" in the file, --log-level debug wins.
	eventually(t, 10*time.Second, "a debug line in the daemon log", func() bool {
		return strings.Contains(log.String(), "level=DEBUG")
	})
}

// The printed configuration is itself a valid config file that prints the
// same again.
func TestConfigCommandOutputRoundTrips(t *testing.T) {
	d := newDaemonFiles(t, daemonOpts{extraConfig: "[runtime]\ncgroup_driver = \"systemd\"\n[runtime.handlers.crun]\npath = \"/usr/bin/crun\"\n"})
	if err := os.MkdirAll(config.DropInDir(d.config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(config.DropInDir(d.config), "10-port.toml"), []byte("[stream]\nport = 10010\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(binary(t), append([]string{"config"}, args...)...).Output()
		if err != nil {
			t.Fatalf("cradle config %v: %v", args, err)
		}
		header, rest, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(header, "# read: ") {
			t.Fatalf("no header naming the files read: %q", header)
		}
		return rest
	}
	first := body("--config", d.config, "--state", "/run/elsewhere")
	if e := contains(first, "cgroup_driver = 'systemd'", "port = 10010", "state = '/run/elsewhere'", "[runtime.handlers.crun]"); e != nil {
		t.Fatal(e)
	}
	printed := filepath.Join(t.TempDir(), "printed.toml")
	if err := os.WriteFile(printed, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	if second := body("--config", printed); second != first {
		t.Errorf("the printed config does not print the same:\n%s\nvs\n%s", second, first)
	}
}
