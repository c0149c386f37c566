package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

// runscPath is Debian's gVisor (hack/install-deps.sh installs it).
const runscPath = "/usr/bin/runsc"

// runscConfig is the handler the docs recommend: gVisor with its network
// stack in the pod's own netns (docs/architecture.md, "Sandboxed runtimes").
const runscConfig = `[runtime.handlers.runsc]
path = "/usr/bin/runsc"
runtime_args = ["--network=host"]
sandboxed = true
`

func needRunsc(t *testing.T) {
	t.Helper()
	needRoot(t)
	if _, err := os.Stat(runscPath); err != nil {
		t.Skip("gVisor's runsc is not installed (apt-get install runsc; hack/install-deps.sh does it)")
	}
}

// runscPod starts a daemon with the runsc handler and the test network and
// runs one pod on it; a gVisor boot takes about a second, so the tests
// share it where they can.
func runscPod(t *testing.T, name string, pid runtimeapi.NamespaceMode) (d *daemon, pod *runtimeapi.PodSandboxConfig, podID, imageName, logDir string) {
	t.Helper()
	reg := testkit.NewRegistry(t)
	web := testkit.MustGoBinaryLayer(t, "github.com/cradle-runtime/cradle/hack/demoweb", "/usr/bin/demoweb", testkit.Gzip)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	img := testkit.MustImage(t, testkit.ImageConfig{Entrypoint: []string{"/usr/bin/demoweb"}, Cmd: []string{":8080"}}, base, web)
	if _, err := reg.Push("it/gvisor:1", img); err != nil {
		t.Fatal(err)
	}
	imageName = reg.Ref("it/gvisor:1")
	d = newDaemonFiles(t, daemonOpts{extraConfig: runscConfig})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageName), nil, nil); err != nil {
		t.Fatal(err)
	}
	logDir = filepath.Join(d.dir, "logs")
	pod = podConfig(name, pid)
	pod.LogDirectory = logDir
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "runsc")
	if err != nil {
		t.Fatal(err)
	}
	return d, pod, podID, imageName, logDir
}

func TestGVisorPod(t *testing.T) {
	needRunsc(t)
	d, pod, podID, imageName, logDir := runscPod(t, "gvisor", runtimeapi.NamespaceMode_CONTAINER)
	ctx := context.Background()
	podStatus, err := d.Runtime.PodSandboxStatus(ctx, podID, true)
	if err != nil {
		t.Fatal(err)
	}
	podIP := podStatus.GetStatus().GetNetwork().GetIp()

	webID := runContainer(t, d, podID, pod, containerConfig("web", imageName))
	clientID := runContainer(t, d, podID, pod, containerConfig("client", imageName, "sleep", "3600"))

	t.Run("status verbose names the sandbox", func(t *testing.T) {
		var info struct {
			RuntimeHandler string `json:"runtimeHandler"`
			Sandbox        struct {
				ContainerID    string `json:"containerID"`
				RuntimeHandler string `json:"runtimeHandler"`
			} `json:"sandbox"`
		}
		if err := json.Unmarshal([]byte(podStatus.GetInfo()["info"]), &info); err != nil {
			t.Fatal(err)
		}
		if info.Sandbox.ContainerID != podID || info.Sandbox.RuntimeHandler != "runsc" || info.RuntimeHandler != "runsc" {
			t.Errorf("verbose pod info: %+v", info)
		}
		if h := podStatus.GetStatus().GetRuntimeHandler(); h != "runsc" {
			t.Errorf("runtime handler = %q", h)
		}
	})

	t.Run("gVisor kernel", func(t *testing.T) {
		out, err := execOut(d, clientID, "busybox", "dmesg")
		if err != nil || !strings.Contains(out, "Starting gVisor") {
			t.Errorf("dmesg = %q, %v", out, err)
		}
	})

	t.Run("pod network and shared localhost", func(t *testing.T) {
		var body string
		eventually(t, 20*time.Second, "the web server to answer on the pod IP "+podIP, func() bool {
			resp, err := http.Get("http://" + podIP + ":8080/")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == 200
		})
		if !strings.Contains(body, "hello from cradle pod gvisor") {
			t.Errorf("page = %q", body)
		}
		if out, err := localGet(d, clientID); err != nil || !strings.Contains(out, "hello from cradle pod") {
			t.Errorf("web through the pod's localhost from the other container: %q, %v", out, err)
		}
	})

	t.Run("logs through conmon", func(t *testing.T) {
		eventually(t, 10*time.Second, "the request in the container log", func() bool {
			b, _ := os.ReadFile(filepath.Join(logDir, "web.log"))
			return strings.Contains(string(b), " stdout F GET / from ")
		})
	})

	t.Run("exec sync", func(t *testing.T) {
		out, errOut, err := d.Runtime.ExecSync(ctx, webID, []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "7") || string(out) != "out\n" || string(errOut) != "err\n" {
			t.Errorf("ExecSync = %q %q %v", out, errOut, err)
		}
	})

	t.Run("exec, attach and port-forward streams", func(t *testing.T) {
		resp, err := d.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: clientID,
			Cmd: []string{"sh", "-c", "cat; echo oops >&2; exit 3"}, Stdin: true, Stdout: true, Stderr: true})
		if err != nil {
			t.Fatal(err)
		}
		if out, errOut, code := runExec(t, resp.Url, "from stdin"); out != "from stdin" || errOut != "oops\n" || code != "3" {
			t.Errorf("exec: out %q err %q code %s", out, errOut, code)
		}
		tickID := runContainer(t, d, podID, pod, containerConfig("tick", imageName, "sh", "-c",
			`i=0; while true; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.2; done`))
		aresp, err := d.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: tickID, Stdout: true})
		if err != nil {
			t.Fatal(err)
		}
		conn := spdyConnect(t, aresp.Url, "v4.channel.k8s.io")
		errStream := newStream(t, conn, "streamType", "error")
		errStream.Close()
		out := bufio.NewReader(newStream(t, conn, "streamType", "stdout"))
		line := make(chan string, 1)
		go func() { l, _ := out.ReadString('\n'); line <- l }()
		select {
		case l := <-line:
			if !strings.HasPrefix(l, "tick ") {
				t.Errorf("attach read %q", l)
			}
		case <-time.After(20 * time.Second):
			b, _ := os.ReadFile(filepath.Join(logDir, "tick.log"))
			t.Errorf("attach: no output; the log has %d bytes: %.200q", len(b), b)
		}
		conn.Close()
		if err := d.Runtime.StopContainer(ctx, tickID, 0); err != nil {
			t.Error(err)
		}
		presp, err := d.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
		if err != nil {
			t.Fatal(err)
		}
		pconn := spdyConnect(t, presp.Url, "portforward.k8s.io")
		var page string
		eventually(t, 20*time.Second, "the page through port forward", func() bool {
			page = forwardGet(t, pconn)
			return strings.Contains(page, "hello from cradle pod gvisor")
		})
	})

	t.Run("runtime handlers in Status", func(t *testing.T) {
		resp, err := d.Runtime.Status(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, h := range resp.GetRuntimeHandlers() {
			if h.GetName() != "runsc" {
				continue
			}
			found = true
			// runsc has no `features` verb and is not runc: nothing optional
			// can be promised for it.
			if f := h.GetFeatures(); f.GetRecursiveReadOnlyMounts() || f.GetUserNamespaces() {
				t.Errorf("runsc features = %v, want none", f)
			}
		}
		if !found {
			t.Errorf("runsc not among %v", resp.GetRuntimeHandlers())
		}
	})

	t.Run("stats", func(t *testing.T) {
		// gVisor accounts the whole sandbox in the pod's cgroup; what a
		// container's own cgroup shows is documented as a gap. The calls
		// must answer for every container.
		cs, err := d.Runtime.ContainerStats(ctx, webID)
		if err != nil {
			t.Errorf("ContainerStats: %v", err)
		}
		ps, err := d.Runtime.PodSandboxStats(ctx, podID)
		if err != nil {
			t.Errorf("PodSandboxStats: %v", err)
		}
		t.Logf("container: cpu %v memory %v; pod: cpu %v memory %v", cs.GetCpu(), cs.GetMemory(),
			ps.GetLinux().GetCpu(), ps.GetLinux().GetMemory())
	})

	t.Run("resource update is not gVisor's", func(t *testing.T) {
		err := d.Runtime.UpdateContainerResources(ctx, webID, &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512}})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("UpdateContainerResources on runsc = %v, want Unimplemented", err)
		}
	})

	t.Run("exit code and stop with grace", func(t *testing.T) {
		failID := runContainerNoWait(t, d, podID, pod, containerConfig("fail", imageName, "sh", "-c", "echo bye; exit 3"))
		st := waitState(t, d, failID, runtimeapi.ContainerState_CONTAINER_EXITED)
		if st.ExitCode != 3 {
			t.Errorf("exit code = %d, want 3 (%s)", st.ExitCode, st.Message)
		}
		b, _ := os.ReadFile(filepath.Join(logDir, "fail.log"))
		if !strings.Contains(string(b), " stdout F bye") {
			t.Errorf("fail.log = %q", b)
		}
		graceID := runContainer(t, d, podID, pod, containerConfig("grace", imageName, "sh", "-c",
			`trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.1; done`))
		eventually(t, 10*time.Second, "the trap to be set", func() bool {
			b, _ := os.ReadFile(filepath.Join(logDir, "grace.log"))
			return strings.Contains(string(b), "ready")
		})
		if err := d.Runtime.StopContainer(ctx, graceID, 20); err != nil {
			t.Fatal(err)
		}
		st = waitState(t, d, graceID, runtimeapi.ContainerState_CONTAINER_EXITED)
		b, _ = os.ReadFile(filepath.Join(logDir, "grace.log"))
		if st.ExitCode != 5 || !strings.Contains(string(b), "got TERM") {
			t.Errorf("stopped with grace: exit %d, log %q", st.ExitCode, b)
		}
		for _, id := range []string{failID, graceID} {
			if err := d.Runtime.RemoveContainer(ctx, id); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("daemon restart", func(t *testing.T) {
		d.stop()
		d.start()
		st := waitState(t, d, webID, runtimeapi.ContainerState_CONTAINER_RUNNING)
		if st.GetMetadata().GetName() != "web" {
			t.Errorf("status after restart: %v", st)
		}
		if out, err := localGet(d, clientID); err != nil || !strings.Contains(out, "hello from cradle pod") {
			t.Errorf("after restart: %q, %v", out, err)
		}
		// A container created and started by the new daemon joins the
		// same sandbox.
		lateID := runContainer(t, d, podID, pod, containerConfig("late", imageName, "sleep", "3600"))
		if out, err := localGet(d, lateID); err != nil || !strings.Contains(out, "hello") {
			t.Errorf("new container after restart: %q, %v", out, err)
		}
	})

	t.Run("teardown", func(t *testing.T) {
		if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
			t.Fatal(err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
			t.Fatal(err)
		}
		list, err := d.Runtime.ListContainers(ctx, nil)
		if err != nil || len(list) != 0 {
			t.Errorf("containers left: %v %v", list, err)
		}
	})
}

// A pod sharing one PID namespace on gVisor: its containers see each
// other's processes; the sandbox container's catatonit lives in the
// sandbox's root PID namespace, not the pod's (docs/architecture.md).
func TestGVisorSharedPIDPod(t *testing.T) {
	needRunsc(t)
	d, pod, podID, imageName, _ := runscPod(t, "gvisor-pid", runtimeapi.NamespaceMode_POD)
	ctx := context.Background()
	sleeperID := runContainer(t, d, podID, pod, containerConfig("sleeper", imageName, "sleep", "3600"))
	otherID := runContainer(t, d, podID, pod, containerConfig("other", imageName, "sleep", "3601"))
	out, err := execOut(d, otherID, "ps")
	if err != nil || !strings.Contains(out, "sleep 3600") || !strings.Contains(out, "sleep 3601") {
		t.Errorf("ps in a shared-PID pod: %q, %v", out, err)
	}
	_ = sleeperID
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
}

// runContainerNoWait creates and starts cfg.
func runContainerNoWait(t *testing.T, d *daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatalf("create %s: %v", cfg.GetMetadata().GetName(), err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("start %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return id
}

// localGet fetches the web container's page over the pod's localhost from
// container id. busybox wget fails on gVisor's host-network sockets
// (EAGAIN on a blocking read, Debian's 2022 build); nc does not.
func localGet(d *daemon, id string) (string, error) {
	return execOut(d, id, "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | nc 127.0.0.1 8080`)
}

// TestGVisorCrashPoints is TestCrashPoints' lifecycle on gVisor at the
// points that matter for a sandboxed pod: the sandbox container's conmon
// and a relayed container's conmon killed with the daemon before their
// records, and a start that ran through the relay before the crash.
func TestGVisorCrashPoints(t *testing.T) {
	needRunsc(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/gvisor-crash:1", img); err != nil {
		t.Fatal(err)
	}
	for _, point := range []string{crashpoint.CreateConmon + "#1", crashpoint.CreateConmon + "#2", crashpoint.StartRan} {
		t.Run(strings.NewReplacer("/", "_", "#", "_").Replace(point), func(t *testing.T) {
			crashCaseOn(t, point, reg.Ref("it/gvisor-crash:1"), runscConfig, "runsc")
		})
	}
}
