package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/cri"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// notifications is a NOTIFY_SOCKET listener: what systemd would hear.
type notifications struct {
	path string
	ch   chan string
}

func listenNotify(t *testing.T, dir string) *notifications {
	t.Helper()
	n := &notifications{path: filepath.Join(dir, "notify.sock"), ch: make(chan string, 1000)}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.ch <- string(buf[:k])
		}
	}()
	return n
}

// await returns the next notification starting with prefix, skipping
// watchdog pings (and, with skipOthers, anything else).
func (n *notifications) await(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m := <-n.ch:
			if strings.HasPrefix(m, prefix) {
				return m
			}
			if m != "WATCHDOG=1" {
				t.Fatalf("notification %q while waiting for %q", m, prefix)
			}
		case <-deadline:
			t.Fatalf("no %q notification within 60s", prefix)
		}
	}
}

// inForce is the configuration the daemon reports in force.
func inForce(t *testing.T, d *daemon) config.Config {
	t.Helper()
	st, err := d.Runtime.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var c config.Config
	if err := json.Unmarshal([]byte(st.GetInfo()[cri.InfoConfig]), &c); err != nil {
		t.Fatalf("Status info config: %v", err)
	}
	return c
}

func handlerNames(t *testing.T, d *daemon) []string {
	t.Helper()
	st, err := d.Runtime.Status(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.GetRuntimeHandlers() {
		names = append(names, h.GetName())
	}
	return names
}

// writeConf writes the daemon's whole config file: the harness's paths
// with registry as the [registry] table's body, then rest.
func (d *daemon) writeConf(logLevel, registry, rest string) {
	d.t.Helper()
	conf := fmt.Sprintf("root = %q\nstate = %q\nsocket = %q\nlog_level = %q\n[cni]\nconf_dir = %q\n[registry]\n%s\n%s",
		d.root, d.state, d.socket, logLevel, filepath.Join(d.dir, "cni"), registry, rest)
	if err := os.WriteFile(d.config, []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// hangup sends SIGHUP and waits for the reload to end (RELOADING=1, then
// READY=1: the daemon applies the whole reload between them).
func (d *daemon) hangup(n *notifications) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	n.await(d.t, "RELOADING=1\nMONOTONIC_USEC=")
	n.await(d.t, "READY=1")
}

// Every reloadable key applies on SIGHUP without a restart, while pods
// run; restart-only keys keep their values with a warning; a bad file
// keeps everything. The daemon tells a NOTIFY_SOCKET listener about each
// step, as systemd's Type=notify expects, and pings the watchdog.
func TestReloadAppliesWithoutRestart(t *testing.T) {
	needRoot(t)
	reg, image := featureImage(t)
	alt := handlerScript(t, t.TempDir(), "alt-runtime", "exec runc features")
	d := newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	notes := listenNotify(t, d.dir)
	certs := filepath.Join(d.dir, "certs.d")
	d.writeConf("info", fmt.Sprintf("config_path = %q", certs), "")
	d.env = []string{"NOTIFY_SOCKET=" + notes.path, "WATCHDOG_USEC=1000000"}
	d.start()
	notes.await(t, "READY=1")
	notes.await(t, "WATCHDOG=1")
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	before := inForce(t, d)

	// Pod A runs on the default handler, runc.
	podA := podConfig("reload-a", runtimeapi.NamespaceMode_CONTAINER)
	podA.LogDirectory = t.TempDir()
	idA, err := d.Runtime.RunPodSandbox(ctx, podA, "")
	if err != nil {
		t.Fatal(err)
	}
	ctrA := runContainer(t, d, idA, podA, containerConfig("a", image, "sleep", "3600"))

	// Everything reloadable changes at once, and one restart-only key.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	metricsAddr := freePort(t)
	otherCerts := filepath.Join(d.dir, "other.d")
	if err := os.MkdirAll(filepath.Join(otherCerts, reg.Host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(otherCerts, reg.Host, "hosts.toml"), []byte(fmt.Sprintf("server = \"http://%s\"\n", deadAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.writeConf("debug", fmt.Sprintf("config_path = %q\nmax_concurrent_downloads = 2\nstall_timeout = \"30s\"", otherCerts),
		fmt.Sprintf("[stream]\nport = 1\nurl_ttl = \"20s\"\n[runtime]\ndefault_handler = \"alt\"\npod_shm_size = 2097152\n[runtime.handlers.alt]\npath = %q\n[metrics]\naddress = %q\n", alt, metricsAddr))
	d.hangup(notes)

	got := inForce(t, d)
	if got.LogLevel != "debug" || got.Registry.ConfigPath != otherCerts || got.Registry.MaxConcurrentDownloads != 2 ||
		got.Registry.StallTimeout.Std() != 30*time.Second || got.Stream.URLTTL.Std() != 20*time.Second ||
		got.Runtime.PodShmSize != 2<<20 || got.Runtime.DefaultHandler != "alt" || got.Runtime.Handlers["alt"].Path != alt {
		t.Errorf("configuration in force after the reload: %+v", got)
	}
	if got.Stream.Port != before.Stream.Port {
		t.Errorf("restart-only stream.port changed to %d", got.Stream.Port)
	}
	if !strings.Contains(d.log.String(), `keys=[stream.port]`) {
		t.Errorf("no warning naming the restart-only key:\n%s", d.log.String())
	}
	// [metrics]: the endpoint, off at start, serves.
	scrapeURL := "http://" + metricsAddr + "/metrics"
	noProxy := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	if fams := scrapeMetrics(t, noProxy, scrapeURL); fams["cradle_operations_total"] == nil {
		t.Errorf("metrics after [metrics] address was set by a reload: no cradle_operations_total")
	}
	// log_level: CRI calls are logged at debug now.
	if _, err := d.Runtime.ListPodSandbox(ctx, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a debug line after the reload", func() bool {
		return strings.Contains(d.log.String(), `level=DEBUG msg="CRI call" method=ListPodSandbox`)
	})
	// [registry]: the new hosts.toml directory sends pulls to its server.
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err == nil || !strings.Contains(err.Error(), deadAddr) {
		t.Errorf("pull after pointing config_path elsewhere: %v (want an error naming %s)", err, deadAddr)
	}
	// Handlers: alt is advertised, and pods without a RuntimeClass run on it.
	if names := handlerNames(t, d); !slices.Contains(names, "alt") {
		t.Errorf("Status handlers after adding alt: %v", names)
	}
	podC := podConfig("reload-c", runtimeapi.NamespaceMode_CONTAINER)
	podC.LogDirectory = t.TempDir()
	idC, err := d.Runtime.RunPodSandbox(ctx, podC, "")
	if err != nil {
		t.Fatal(err)
	}
	ctrC := runContainer(t, d, idC, podC, containerConfig("c", image, "sleep", "3600"))
	if _, err := os.Stat(filepath.Join(d.state, "oci", "alt", "ctr", ctrC)); err != nil {
		t.Errorf("a container of a pod started after default_handler = alt is not on alt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.state, "oci", "runc", "ctr", ctrA)); err != nil {
		t.Errorf("the container started before the reload left runc: %v", err)
	}
	// pod_shm_size: the new pod's /dev/shm has the new size.
	var fs unix.Statfs_t
	if err := unix.Statfs(filepath.Join(d.state, "pods", idC, "shm"), &fs); err != nil {
		t.Fatal(err)
	}
	if size := int64(fs.Blocks) * fs.Bsize; size != 2<<20 {
		t.Errorf("shm of a pod created after pod_shm_size = 2097152 is %d bytes", size)
	}
	// `cradle config` shows the daemon's configuration and what the files
	// would change.
	out, err := exec.Command(binary(t), "config", "--config", d.config).CombinedOutput()
	if err != nil {
		t.Fatalf("cradle config: %v\n%s", err, out)
	}
	if e := contains(string(out), "# in force in the daemon at "+d.socket, "# the files differ in stream.port: only a restart applies them",
		"default_handler = 'alt'", "url_ttl = '20s'", "port = 0"); e != nil {
		t.Error(e)
	}

	// A new pod on the first default handler still works (its containers
	// went to runc), then alt goes away while pod C runs on it.
	d.writeConf("info", fmt.Sprintf("config_path = %q", certs), "")
	d.hangup(notes)
	if names := handlerNames(t, d); slices.Contains(names, "alt") {
		t.Errorf("Status still advertises the removed handler: %v", names)
	}
	if resp, err := noProxy.Get(scrapeURL); err == nil {
		resp.Body.Close()
		t.Errorf("metrics still served after [metrics] was removed by a reload: %s", resp.Status)
	}
	if _, err := d.Runtime.RunPodSandbox(ctx, podConfig("reload-d", runtimeapi.NamespaceMode_CONTAINER), "alt"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a pod on the removed handler: %v", err)
	}
	if got := inForce(t, d); got.Runtime.DefaultHandler != "runc" || got.Runtime.PodShmSize != before.Runtime.PodShmSize || got.LogLevel != "info" {
		t.Errorf("configuration in force after the second reload: %+v", got)
	}
	for _, id := range []string{ctrA, ctrC} {
		waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	}
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err != nil {
		t.Errorf("pull with the first config_path again: %v", err)
	}

	// A bad file changes nothing and says where and why.
	if err := os.WriteFile(d.config, []byte(fmt.Sprintf("root = %q\nstate = %q\nsocket = %q\n[runtime]\npod_shm_size = 12\n", d.root, d.state, d.socket)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.hangup(notes)
	if e := contains(d.log.String(), "configuration reload failed", d.config+":5", "runtime.pod_shm_size", "at least 1 MiB"); e != nil {
		t.Error(e)
	}
	if got := inForce(t, d); got.Runtime.PodShmSize != before.Runtime.PodShmSize || got.Registry.ConfigPath != certs {
		t.Errorf("a bad file changed the configuration: %+v", got)
	}

	// Pods of the removed handler and of the old default stop and go.
	for _, id := range []string{idA, idC} {
		if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
			t.Fatalf("stop pod %s: %v", id, err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatalf("remove pod %s: %v", id, err)
		}
	}
	d.stop()
	notes.await(t, "STOPPING=1")
}

// Reloads that add and remove a handler and flip the log level while CRI
// calls run: the daemon is built with -race, so a data race shows in its
// log; every call answers as it would without the reloads.
func TestReloadDuringCRICalls(t *testing.T) {
	needRoot(t)
	alt := handlerScript(t, t.TempDir(), "alt-runtime", "exec runc features")
	d := newDaemonFiles(t, daemonOpts{})
	notes := listenNotify(t, d.dir)
	certs := filepath.Join(d.dir, "certs.d")
	d.writeConf("info", fmt.Sprintf("config_path = %q", certs), "")
	d.env = []string{"NOTIFY_SOCKET=" + notes.path}
	d.start()
	notes.await(t, "READY=1")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 3 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				if _, err := d.Runtime.Status(ctx, true); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("Status: %w", err)
					return
				}
				// A host-network pod needs no CNI: Run, Stop, Remove.
				pod := podConfig(fmt.Sprintf("race-%d-%d", i, n), runtimeapi.NamespaceMode_CONTAINER)
				pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
				id, err := d.Runtime.RunPodSandbox(ctx, pod, "")
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("RunPodSandbox: %w", err)
					}
					return
				}
				if err := d.Runtime.StopPodSandbox(context.Background(), id); err != nil {
					errs <- fmt.Errorf("StopPodSandbox: %w", err)
					return
				}
				if err := d.Runtime.RemovePodSandbox(context.Background(), id); err != nil {
					errs <- fmt.Errorf("RemovePodSandbox: %w", err)
					return
				}
			}
		})
	}
	for i := range 8 {
		if i%2 == 0 {
			d.writeConf("debug", fmt.Sprintf("config_path = %q\nmax_concurrent_downloads = %d", certs, i+1),
				fmt.Sprintf("[stream]\nurl_ttl = \"%ds\"\n[runtime]\npod_shm_size = %d\n[runtime.handlers.alt]\npath = %q\n", 10+i, (i+2)<<20, alt))
		} else {
			d.writeConf("info", fmt.Sprintf("config_path = %q", certs), "")
		}
		d.hangup(notes)
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if strings.Contains(d.log.String(), "DATA RACE") {
		t.Errorf("the race detector fired in the daemon:\n%s", d.log.String())
	}
	if n := strings.Count(d.log.String(), `msg="configuration reloaded"`); n != 8 {
		t.Errorf("%d reloads logged as applied, want 8", n)
	}
}
