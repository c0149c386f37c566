// Package pkg tests the Debian package hack/package.sh builds: its
// contents, then a real install with dpkg -i, the installed binary, and a
// removal and purge. The install runs in a private mount namespace whose
// /etc, /usr and /var/lib/dpkg are overlays on the host's: dpkg, the
// binary and the conffile are real there, and the host never sees them
// (another test looking for /etc/cradle, another dpkg run, a crash of
// this test), so the machine stays as it was whatever happens.
package pkg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// installed paths the package owns; none may exist before the test, and
// none after its purge.
var owned = []string{"/usr/bin/cradle", "/usr/bin/cradled", "/etc/cradle", "/lib/systemd/system/cradle.service", "/usr/share/doc/cradle"}

func TestPackageBuildsInstallsAndPurges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs a package: needs root (CI runs as root)")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s missing: not a Debian system", tool)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "cradle").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Skip("a cradle package is installed on this machine: not touching it")
	}
	for _, p := range owned {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Skipf("%s exists on this machine: the checks assume a machine without cradle", p)
		}
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare (util-linux) missing: the install needs a private mount namespace")
	}
	for _, dep := range []string{"runc", "conmon", "containernetworking-plugins", "catatonit", "iptables"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", dep).Output(); err != nil || !strings.Contains(string(out), "install ok installed") {
			t.Skipf("dependency %s is not installed (hack/install-deps.sh installs it)", dep)
		}
	}

	out := t.TempDir()
	deb := strings.TrimSpace(run(t, filepath.Join(repoRoot(t), "hack", "package.sh"), out))
	if filepath.Dir(deb) != out || !strings.HasSuffix(deb, ".deb") {
		t.Fatalf("package.sh printed %q", deb)
	}

	contents := run(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{"./usr/bin/cradle", "./usr/bin/cradled", "./lib/systemd/system/cradle.service", "./etc/cradle/cradle.toml",
		"./usr/share/doc/cradle/examples/10-cradle-bridge.conflist", "./usr/share/doc/cradle/operations.md"} {
		if !strings.Contains(contents, want) {
			t.Errorf("package lacks %s:\n%s", want, contents)
		}
	}
	info := run(t, "dpkg-deb", "-I", deb)
	for _, want := range []string{"Package: cradle", "Depends: runc, conmon, containernetworking-plugins, catatonit, iptables", "postinst", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("package info lacks %q:\n%s", want, info)
		}
	}
	postinst := run(t, "sh", "-c", "dpkg-deb -I \"$0\" postinst", deb)
	if !strings.Contains(postinst, "[ -d /run/systemd/system ]") || !strings.Contains(postinst, "systemctl enable cradle.service") {
		t.Errorf("postinst does not enable the unit where systemd runs:\n%s", postinst)
	}

	// The install, in a private mount namespace: this test binary again,
	// running only TestInstalledPackage.
	child := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0],
		"-test.run", "^TestInstalledPackage$", "-test.v", "-test.count=1")
	ns, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	child.Env = append(os.Environ(), debEnv+"="+deb, parentNSEnv+"="+ns)
	outp, err := child.CombinedOutput()
	if err != nil || !strings.Contains(string(outp), "--- PASS: TestInstalledPackage") {
		t.Errorf("install in a private mount namespace failed: %v\n%s", err, outp)
	}
	for _, p := range owned {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s appeared on the host", p)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "cradle").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Errorf("the host's dpkg database lists cradle: %s", out)
	}
}

// debEnv names the package TestInstalledPackage installs; parentNSEnv
// the mount namespace it must not be in.
const (
	debEnv      = "CRADLE_TEST_DEB"
	parentNSEnv = "CRADLE_TEST_PARENT_MNTNS"
)

// overlay mounts an overlay of dir on itself whose writes go to a
// temporary upper dir: the host's dir is read, never written.
func overlay(t *testing.T, dir string) {
	t.Helper()
	tmp, err := os.MkdirTemp("", "cradle-pkg-overlay-")
	if err != nil {
		t.Fatal(err)
	}
	upper, work := filepath.Join(tmp, "upper"), filepath.Join(tmp, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", dir, "overlay", 0, "lowerdir="+dir+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("overlay on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		os.RemoveAll(tmp)
	})
}

// TestInstalledPackage runs inside TestPackageBuildsInstallsAndPurges's
// private mount namespace.
func TestInstalledPackage(t *testing.T) {
	deb := os.Getenv(debEnv)
	if deb == "" {
		t.Skip("run by TestPackageBuildsInstallsAndPurges in a private mount namespace")
	}
	// A namespace of our own, or the overlays would show on the host.
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self == "" || self == os.Getenv(parentNSEnv) {
		t.Fatal("not in a private mount namespace")
	}
	for _, dir := range []string{"/etc", "/usr", "/var/lib/dpkg"} {
		overlay(t, dir)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "-P", "cradle").CombinedOutput(); err != nil {
			t.Errorf("dpkg -P cradle: %v\n%s", err, out)
		}
		for _, p := range owned {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left after purge", p)
			}
		}
	})
	run(t, "dpkg", "-i", deb)
	arch := strings.TrimSpace(run(t, "dpkg", "--print-architecture"))
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(deb), "cradle_"), "_"+arch+".deb")
	// `cradle version` asks a daemon, as crictl's does: the installed
	// binary serves one on private directories, with the packaged
	// configuration file.
	serveInstalled(t, func(endpoint, socket string) {
		v := run(t, "/usr/bin/cradle", "--runtime-endpoint", endpoint, "version")
		if !strings.Contains(v, "RuntimeName:  cradle") || !strings.Contains(v, "RuntimeVersion:  "+version) {
			t.Errorf("cradle version (package version %s):\n%s", version, v)
		}
		if c := run(t, "/usr/bin/cradle", "config", "--socket", socket); !strings.Contains(c, "# in force in the daemon at "+socket) {
			t.Errorf("cradle config with the daemon running:\n%s", c)
		}
	})
	// No daemon runs on the default socket: the files' configuration,
	// which is the packaged conffile (all comments), i.e. the defaults.
	cfg := run(t, "/usr/bin/cradle", "config")
	for _, want := range []string{"# read: /etc/cradle/cradle.toml", "root = '/var/lib/cradle'", "socket = '/run/cradle/cradle.sock'"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("cradle config lacks %q:\n%s", want, cfg)
		}
	}
	conf, err := os.ReadFile("/etc/cradle/cradle.toml")
	if err != nil || !strings.Contains(string(conf), "#[registry]") {
		t.Errorf("conffile: %v\n%s", err, conf)
	}
	if st := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "cradle"); !strings.Contains(st, "/etc/cradle/cradle.toml") {
		t.Errorf("cradle.toml is not a conffile: %q", st)
	}
	// The installed unit passes systemd's own check (its ExecStart now
	// exists), where systemd-analyze is installed.
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/cradle.service").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed: the unit is not verified")
	}
	// dpkg -r keeps the conffile, -P (cleanup) removes it.
	run(t, "dpkg", "-r", "cradle")
	if _, err := os.Stat("/usr/bin/cradle"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("/usr/bin/cradle left after dpkg -r: %v", err)
	}
	if _, err := os.Stat("/etc/cradle/cradle.toml"); err != nil {
		t.Errorf("dpkg -r removed the conffile: %v", err)
	}
}

// serveInstalled runs /usr/bin/cradle daemon on temporary directories
// until f returns, then stops it with SIGTERM.
func serveInstalled(t *testing.T, f func(endpoint, socket string)) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cradle-pkg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "state", "cradle.sock")
	endpoint := "unix://" + socket
	log := &lockedBuf{}
	cmd := exec.Command("/usr/bin/cradle", "daemon", "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--socket", socket)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("installed daemon exited with %v after SIGTERM\n%s", err, log.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("installed daemon did not stop within 30s")
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("/usr/bin/cradle", "--runtime-endpoint", endpoint, "version").Run() != nil {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("installed daemon exited: %v\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("installed daemon not serving after 60s\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	f(endpoint, socket)
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
