// Package integration runs the real cradle binary as a daemon and talks to it
// the way kubelet does, through k8s.io/cri-client.
package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

var (
	buildOnce  sync.Once
	cradleBin  string
	buildError error
)

// binary builds cmd/cradle and cmd/cradled (which `cradle daemon` execs)
// into one dir once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cradle-bin-")
		if err != nil {
			buildError = err
			return
		}
		cradleBin = filepath.Join(dir, "cradle")
		// With crash points compiled in (inert unless CRADLE_CRASH_AT is
		// set: crash_test.go arms them).
		cmd := exec.Command("go", "build", "-race", "-tags", "crashpoints", "-o", dir+"/",
			"github.com/cradle-runtime/cradle/cmd/cradle", "github.com/cradle-runtime/cradle/cmd/cradled")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildError != nil {
		t.Fatal(buildError)
	}
	return cradleBin
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root)")
	}
}

// daemon is one running `cradle daemon`.
type daemon struct {
	t       *testing.T
	dir     string // holds root/, state/, cradle.toml, certs.d/
	root    string
	state   string
	socket  string
	config  string
	cmd     *exec.Cmd
	log     *ptyReader // the daemon's output, safe to read while it runs
	done    chan struct{}
	exitErr error
	// killOnCleanup is set by the first start: one cleanup, registered
	// then, kills whichever process is current, so a restart in the middle
	// of a test does not stop the daemon before the test's own cleanups.
	killOnCleanup bool
	// tornDown: the daemon was alive at the end and removed every pod, so
	// anything still mounted or running under dir is the daemon's leak.
	tornDown bool

	// env is added to the next start's environment (a crash point).
	env []string
	// bin, when set, is the binary the next start runs instead of the
	// test build (an upgrade).
	bin string

	Runtime internalapi.RuntimeService
	Images  internalapi.ImageManagerService
}

type daemonOpts struct {
	extraConfig string // appended to cradle.toml
	nri         string // more keys of the [nri] table
	dir         string // reuse a previous daemon's dirs (restart)
}

// newDaemonFiles prepares the directories and config of a daemon without starting it.
func newDaemonFiles(t *testing.T, o daemonOpts) *daemon {
	t.Helper()
	dir := o.dir
	if dir == "" {
		// Short path: unix socket paths are limited to 108 bytes.
		var err error
		dir, err = os.MkdirTemp("", "cradle-it-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	d := &daemon{
		t:      t,
		dir:    dir,
		root:   filepath.Join(dir, "root"),
		state:  filepath.Join(dir, "state"),
		socket: filepath.Join(dir, "cradle.sock"),
		config: filepath.Join(dir, "cradle.toml"),
	}
	if o.dir == "" {
		// Runs after the daemon is killed and before dir goes.
		t.Cleanup(func() { reapLeftovers(t, dir, d.tornDown) })
	}
	if err := os.MkdirAll(filepath.Join(dir, "certs.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`root = %q
state = %q
socket = %q
log_level = "debug"
[registry]
config_path = %q
[cdi]
spec_dirs = [%q]
[nri]
socket_path = %q
plugin_path = %q
plugin_config_path = %q
%s
# last: tests append [cni] keys in extraConfig
[cni]
conf_dir = %q
`, d.root, d.state, d.socket, filepath.Join(dir, "certs.d"),
		d.cdiDir(), d.nriSocket(), filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf"), o.nri,
		filepath.Join(dir, "cni"))
	if err := os.WriteFile(d.config, []byte(conf+o.extraConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// cdiDir is the daemon's only CDI spec dir, so no host spec file counts.
func (d *daemon) cdiDir() string { return filepath.Join(d.dir, "cdi") }

// nriSocket is the daemon's own NRI socket: never the host's.
func (d *daemon) nriSocket() string { return filepath.Join(d.dir, "nri.sock") }

// startDaemon starts a daemon and waits until it answers Version.
func startDaemon(t *testing.T, o daemonOpts) *daemon {
	t.Helper()
	d := newDaemonFiles(t, o)
	d.start()
	return d
}

func (d *daemon) start() {
	t := d.t
	t.Helper()
	d.log = &ptyReader{}
	bin := binary(t)
	if d.bin != "" {
		bin = d.bin
	}
	d.cmd = exec.Command(bin, "daemon", "--config", d.config)
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(d.env) > 0 {
		d.cmd.Env = append(os.Environ(), d.env...)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { d.exitErr = d.cmd.Wait(); close(d.done) }()
	if !d.killOnCleanup {
		d.killOnCleanup = true
		t.Cleanup(func() {
			d.tearDownPods()
			d.kill()
			if t.Failed() {
				t.Logf("daemon log:\n%s", d.log.String())
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if rt, err := remote.NewRemoteRuntimeService(ctx, "unix://"+d.socket, 10*time.Second, nil, false); err == nil {
			if _, err := rt.Version(ctx, "v1"); err == nil {
				d.Runtime = rt
				break
			}
		}
		select {
		case <-d.done:
			t.Fatalf("daemon exited during start-up: %v\n%s", d.exitErr, d.log.String())
		case <-ctx.Done():
			t.Fatalf("daemon did not answer within 60s\n%s", d.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	im, err := remote.NewRemoteImageService(ctx, "unix://"+d.socket, 10*time.Minute, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Images = im
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		if d.exitErr != nil {
			d.t.Fatalf("daemon exited with %v after SIGTERM\n%s", d.exitErr, d.log.String())
		}
	case <-time.After(30 * time.Second):
		d.t.Fatalf("daemon did not exit within 30s of SIGTERM\n%s", d.log.String())
	}
}

// kill simulates a crash: SIGKILL, no cleanup.
func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// cli runs the cradle CLI against this daemon.
func (d *daemon) cli(args ...string) (string, error) {
	d.t.Helper()
	cmd := exec.Command(binary(d.t), append([]string{"--runtime-endpoint", "unix://" + d.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeHostsToml writes <certs.d>/<host>/hosts.toml.
func (d *daemon) writeHostsToml(host, content string) {
	d.t.Helper()
	dir := filepath.Join(d.dir, "certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(content), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// layerDirs lists committed layers and leftovers under <root>/layers.
func (d *daemon) layerDirs() []string {
	entries, _ := os.ReadDir(filepath.Join(d.root, "layers"))
	var out []string
	for _, e := range entries {
		if e.Name() == "tmp" {
			sub, _ := os.ReadDir(filepath.Join(d.root, "layers", "tmp"))
			for _, s := range sub {
				out = append(out, "tmp/"+s.Name())
			}
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(s string, subs ...string) error {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return fmt.Errorf("%q does not contain %q", s, sub)
		}
	}
	return nil
}
