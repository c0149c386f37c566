package benchkit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestContainerdConfigOptionalSettings(t *testing.T) {
	c := ContainerdConfig{
		Comment: "written by a test", Root: "/w/root", State: "/w/state", Socket: "/w/state/c.sock",
		Runc: "/usr/sbin/runc", CNIConfDir: "/w/net.d", CertsDir: "/w/certs.d",
	}
	plain := c.TOML()
	for _, want := range []string{"# written by a test\n", `root = "/w/root"`, `state = "/w/state"`,
		`address = "/w/state/c.sock"`, `address = "/w/state/c.sock.ttrpc"`, `path = "/w/root/opt"`,
		`BinaryName = "/usr/sbin/runc"`, `Root = "/w/state/runc"`, `conf_dir = "/w/net.d"`, `config_path = "/w/certs.d"`} {
		if !strings.Contains(plain, want) {
			t.Errorf("config lacks %s:\n%s", want, plain)
		}
	}
	for _, absent := range []string{"sandbox_image", "bin_dir", "max_conf_num"} {
		if strings.Contains(plain, absent) {
			t.Errorf("config sets %s though it was not asked to:\n%s", absent, plain)
		}
	}
	c.SandboxImage, c.CNIBinDir, c.CNIMaxConfs = "127.0.0.1:5000/pause:1", "/usr/lib/cni", 1
	full := c.TOML()
	for _, want := range []string{`sandbox_image = "127.0.0.1:5000/pause:1"`, `bin_dir = "/usr/lib/cni"`, "max_conf_num = 1\n"} {
		if !strings.Contains(full, want) {
			t.Errorf("config lacks %s:\n%s", want, full)
		}
	}
}

func TestCradleConfigPluginDirs(t *testing.T) {
	c := CradleConfig{Comment: "x", Root: "/r", State: "/s", Socket: "/s/c.sock", CertsDir: "/certs", CNIConfDir: "/net.d"}
	if got := c.TOML(); strings.Contains(got, "plugin_dirs") || !strings.Contains(got, `socket = "/s/c.sock"`) {
		t.Errorf("config without plugin dirs:\n%s", got)
	}
	c.CNIPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	if got := c.TOML(); !strings.Contains(got, `plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]`+"\n") {
		t.Errorf("config with plugin dirs:\n%s", got)
	}
}

func TestDaemonEnvDropsProxies(t *testing.T) {
	env := daemonEnv([]string{"PATH=/bin", "HTTP_PROXY=http://p:3128", "https_proxy=x", "ALL_PROXY=y", "NO_PROXY=corp", "HOME=/root"})
	want := []string{"PATH=/bin", "HOME=/root", "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost"}
	if !slices.Equal(env, want) {
		t.Errorf("daemonEnv = %q, want %q", env, want)
	}
}

func TestWriteHostsDir(t *testing.T) {
	dir := t.TempDir()
	if err := WriteHostsDir(dir, "127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "127.0.0.1:5000", "hosts.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`server = "http://127.0.0.1:5000"`, `[host."http://127.0.0.1:5000"]`, `capabilities = ["pull", "resolve"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("hosts.toml lacks %s:\n%s", want, b)
		}
	}
	if err := WriteHostsDir(filepath.Join(dir, "127.0.0.1:5000", "hosts.toml"), "h"); err == nil {
		t.Error("WriteHostsDir below a regular file gave no error")
	}
}

func TestRemoveWorkDirUnmountsFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	inner := filepath.Join(work, "a", "b")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	// Stacked mounts: the deeper one must go first or the outer is busy.
	if err := unix.Mount("tmpfs", filepath.Join(work, "a"), "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, ""); err != nil {
		_ = unix.Unmount(filepath.Join(work, "a"), unix.MNT_DETACH)
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(inner, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemoveWorkDir(work); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), work) {
		t.Errorf("mounts under %s remain", work)
	}
}

func TestRemoveWorkDirAbsentIsFine(t *testing.T) {
	if err := RemoveWorkDir(filepath.Join(t.TempDir(), "never-made")); err != nil {
		t.Errorf("RemoveWorkDir of an absent dir: %v", err)
	}
}

func TestStartDaemonReportsEarlyExit(t *testing.T) {
	dir := t.TempDir()
	spec := DaemonSpec{
		Name: "failing", Argv: []string{"/bin/sh", "-c", "echo config is broken >&2; exit 3"},
		LogPath: filepath.Join(dir, "log"), Socket: filepath.Join(dir, "never.sock"),
		RuntimeTimeout: time.Second, ImageTimeout: time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := StartDaemon(ctx, spec)
	if err == nil {
		d.Stop()
		t.Fatal("StartDaemon of a process that exits gave no error")
	}
	for _, want := range []string{"failing exited during start-up", "exit status 3", "config is broken"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestStartDaemonStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// sleep never serves CRI: the cancelled context must end the wait
	// rather than the one-minute start-up limit.
	_, err := StartDaemon(ctx, DaemonSpec{Name: "sleeper", Argv: []string{"/bin/sleep", "600"},
		LogPath: filepath.Join(dir, "log"), Socket: filepath.Join(dir, "never.sock")})
	if err != context.Canceled {
		t.Errorf("StartDaemon with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStartDaemonRejectsBadCommands(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := StartDaemon(ctx, DaemonSpec{Name: "none", LogPath: filepath.Join(dir, "log")}); err == nil {
		t.Error("StartDaemon without argv gave no error")
	}
	if _, err := StartDaemon(ctx, DaemonSpec{Name: "missing", Argv: []string{filepath.Join(dir, "no-such-binary")},
		LogPath: filepath.Join(dir, "log")}); err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Errorf("StartDaemon of a missing binary = %v", err)
	}
}

func TestLoadAverageHasThreeFields(t *testing.T) {
	if f := strings.Fields(LoadAverage()); len(f) != 3 {
		t.Errorf("LoadAverage() = %q, want three numbers", LoadAverage())
	}
}

func TestCheckExecutables(t *testing.T) {
	dir := t.TempDir()
	exe, plain := filepath.Join(dir, "exe"), filepath.Join(dir, "plain")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckExecutables("-a", exe, "-b", ""); err != nil {
		t.Errorf("an executable and an empty path: %v", err)
	}
	for _, bad := range []string{plain, dir, filepath.Join(dir, "absent")} {
		if err := CheckExecutables("-a", exe, "-b", bad); err == nil || !strings.HasPrefix(err.Error(), "-b: ") {
			t.Errorf("CheckExecutables with %s = %v, want an error naming -b", bad, err)
		}
	}
}

func TestFinishWorkDirKeepsOrRemoves(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := FinishWorkDir(dir, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("kept dir is gone: %v", err)
	}
	if err := FinishWorkDir(dir, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir not removed: %v", err)
	}
}
