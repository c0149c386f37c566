package oci

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	testRunc   = "/usr/sbin/runc"
	testConmon = "/usr/bin/conmon"
	// testCgroupParent holds every test container's cgroup; removed at exit.
	testCgroupParent = "cradle-oci-test"
	cgroupRoot       = "/sys/fs/cgroup"
)

var (
	rootfsOnce sync.Once
	rootfsDir  string
	rootfsErr  error
	idCounter  atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv(strayConmonEnv) != "" {
		// A stand-in conmon for TestDeleteKillsAStrayConmon: it only waits.
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	if os.Geteuid() == 0 {
		// Like the daemon: orphans of our children are re-parented to us.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "set subreaper:", err)
			os.Exit(2)
		}
	}
	code := m.Run()
	if rootfsDir != "" {
		os.RemoveAll(filepath.Dir(rootfsDir))
	}
	for _, d := range cgroupDirs(testCgroupParent) {
		os.Remove(d) // empty once every test container is deleted
	}
	os.Exit(code)
}

// requireRuntime skips tests that need root and real runc and conmon.
func requireRuntime(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, bin := range []string{testRunc, testConmon, "/bin/busybox"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
}

// testRootfs is one read-only busybox root shared by all test containers.
func testRootfs(t *testing.T) string {
	t.Helper()
	rootfsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "oci-rootfs")
		if err != nil {
			rootfsErr = err
			return
		}
		root := filepath.Join(dir, "rootfs")
		for _, d := range []string{"bin", "proc", "dev", "sys", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				rootfsErr = err
				return
			}
		}
		data, err := os.ReadFile("/bin/busybox")
		if err == nil {
			err = os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755)
		}
		for _, name := range []string{"sh", "sleep", "echo", "cat", "true", "false", "yes", "head", "ps", "kill", "test"} {
			if err == nil {
				err = os.Symlink("busybox", filepath.Join(root, "bin", name))
			}
		}
		rootfsDir, rootfsErr = root, err
	})
	if rootfsErr != nil {
		t.Fatalf("build rootfs: %v", rootfsErr)
	}
	return rootfsDir
}

type testEnv struct {
	t   *testing.T
	dir string
	cfg Config
	rt  *Runtime
}

// newEnv makes a Runtime over a fresh, short state dir (attach socket paths
// must fit a sockaddr_un) and checks, when the test ends, that nothing is
// left: no zombie children, no conmon, no mounts.
func newEnv(t *testing.T) *testEnv {
	t.Helper()
	requireRuntime(t)
	dir, err := os.MkdirTemp("", "oci")
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir}
	e.cfg = Config{
		Handler:     "runc",
		RuntimePath: testRunc,
		RuntimeRoot: filepath.Join(dir, "runc"),
		ConmonPath:  testConmon,
		StateDir:    filepath.Join(dir, "s"),
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	t.Cleanup(func() {
		if e.rt != nil {
			e.rt.Close()
		}
		assertNoLeaks(t, dir)
		os.RemoveAll(dir)
	})
	e.rt = e.open()
	return e
}

// open starts a Runtime over the env's directories, as a restarted daemon would.
func (e *testEnv) open() *Runtime {
	e.t.Helper()
	rt, err := New(e.cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return rt
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type testContainer struct {
	id      string
	bundle  string
	logPath string
	spec    *specs.Spec
}

func (c *testContainer) opts() CreateOpts {
	return CreateOpts{ID: c.id, Bundle: c.bundle, LogPath: c.logPath, Terminal: c.spec.Process.Terminal}
}

// newContainer writes a bundle running args and registers its deletion.
func (e *testEnv) newContainer(args []string, mods ...func(*specs.Spec)) *testContainer {
	e.t.Helper()
	id := fmt.Sprintf("c%d-%d", os.Getpid(), idCounter.Add(1))
	c := &testContainer{
		id:      id,
		bundle:  filepath.Join(e.dir, "bundles", id),
		logPath: filepath.Join(e.dir, "logs", id+".log"),
		spec:    testSpec(testRootfs(e.t), id, args),
	}
	for _, m := range mods {
		m(c.spec)
	}
	for _, d := range []string{c.bundle, filepath.Dir(c.logPath)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			e.t.Fatal(err)
		}
	}
	data, err := json.MarshalIndent(c.spec, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.rt.Delete(ctx, id, true); err != nil {
			e.t.Errorf("cleanup: delete %s: %v", id, err)
		}
		for _, d := range cgroupDirs(filepath.Join(testCgroupParent, id)) {
			if _, err := os.Stat(d); err == nil {
				e.t.Errorf("cgroup %s left behind", d)
				os.Remove(d)
			}
		}
	})
	return c
}

func testSpec(rootfs, id string, args []string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args:            args,
			Env:             []string{"PATH=/bin", "FOO=from-spec"},
			Cwd:             "/",
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: "oci-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=1m"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=16m"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: "/" + testCgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
}

// run creates and starts c and returns its pid.
func (e *testEnv) run(c *testContainer) int {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pid, err := e.rt.Create(ctx, c.opts())
	if err != nil {
		e.t.Fatalf("Create %s: %v", c.id, err)
	}
	if err := e.rt.Start(ctx, c.id); err != nil {
		e.t.Fatalf("Start %s: %v", c.id, err)
	}
	return pid
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cgroupDirs lists rel in every mounted v1 hierarchy (and the v2 one).
func cgroupDirs(rel string) []string {
	ents, err := os.ReadDir(cgroupRoot)
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range ents {
		dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), rel))
	}
	return dirs
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// zombieChildren lists zombies whose parent is this test process.
func zombieChildren() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.state == 'Z' && st.ppid == os.Getpid() {
			out = append(out, strconv.Itoa(pid)+"("+st.comm+")")
		}
	}
	return out
}

// processesMentioning lists live processes whose command line contains s.
func processesMentioning(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

func assertNoLeaks(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		z, procs := zombieChildren(), processesMentioning(dir)
		if len(z) == 0 && len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("leaked: zombie children %v, processes %q", z, procs)
			break
		}
		time.Sleep(delay)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err == nil && strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s left behind", dir)
	}
}

// logLine is one parsed line of a CRI log file.
type logLine struct {
	time   time.Time
	stream string
	tag    string
	text   string
}

// readLog parses a CRI log file, failing the test on a malformed line.
func readLog(t *testing.T, path string) []logLine {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 {
			t.Fatalf("malformed log line %q", sc.Text())
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("log line %q: bad timestamp: %v", sc.Text(), err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" || parts[2] != "F" && parts[2] != "P" {
			t.Fatalf("log line %q: bad stream or tag", sc.Text())
		}
		lines = append(lines, logLine{ts, parts[1], parts[2], parts[3]})
	}
	return lines
}

func hasLine(lines []logLine, stream, text string) bool {
	for _, l := range lines {
		if l.stream == stream && l.text == text {
			return true
		}
	}
	return false
}

// startChild starts a plain child process, reaped by the test.
func startChild(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}
