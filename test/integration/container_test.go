package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func containerConfig(name, image string, args ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  args,
		LogPath:  name + ".log",
		Labels:   map[string]string{"container": name},
	}
}

func waitState(t *testing.T, d *daemon, id string, want runtimeapi.ContainerState) *runtimeapi.ContainerStatus {
	t.Helper()
	var st *runtimeapi.ContainerStatus
	eventually(t, 30*time.Second, fmt.Sprintf("container %s to be %v", id, want), func() bool {
		resp, err := d.Runtime.ContainerStatus(context.Background(), id, false)
		if err != nil {
			t.Fatal(err)
		}
		st = resp.GetStatus()
		return st.GetState() == want
	})
	return st
}

func TestContainerLifecycleThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	web := testkit.MustGoBinaryLayer(t, "github.com/cradle-runtime/cradle/hack/demoweb", "/usr/bin/demoweb", testkit.Gzip)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	img := testkit.MustImage(t, testkit.ImageConfig{Entrypoint: []string{"/usr/bin/demoweb"}, Cmd: []string{":8080"}}, base, web)
	if _, err := reg.Push("it/web:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/web:1")
	configDigest, _ := img.ConfigName()
	manifestDigest, _ := img.Digest()

	d, pod, podID, logDir := podWithImage(t, "ctr", imageName)
	ctx := context.Background()
	podStatus, _ := d.Runtime.PodSandboxStatus(ctx, podID, false)
	podIP := podStatus.GetStatus().GetNetwork().GetIp()

	// A web server from the image's entrypoint.
	webCfg := containerConfig("web", imageName)
	webID, err := d.Runtime.CreateContainer(ctx, podID, webCfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, webID, runtimeapi.ContainerState_CONTAINER_CREATED)
	if st.ImageId != configDigest.String() || st.ImageRef != reg.Host+"/it/web@"+manifestDigest.String() ||
		st.Metadata.GetName() != "web" || st.LogPath != filepath.Join(logDir, "web.log") {
		t.Errorf("created status = %v", st)
	}
	if err := d.Runtime.StartContainer(ctx, webID); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d, webID, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if st.StartedAt == 0 {
		t.Errorf("no started_at: %v", st)
	}
	var body string
	eventually(t, 20*time.Second, "the pod's web server to answer on "+podIP, func() bool {
		resp, err := http.Get("http://" + podIP + ":8080/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(body, "hello from cradle pod ctr") {
		t.Errorf("page = %q (the pod hostname should be ctr)", body)
	}
	// Logs in the CRI format.
	eventually(t, 10*time.Second, "the request in the container log", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "web.log"))
		return strings.Contains(string(b), " stdout F GET / from ")
	})

	// Verbose status: the init's host pid and the runtime spec, under the
	// keys containerd uses, which operators' tools read.
	vs, err := d.Runtime.ContainerStatus(ctx, webID, true)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid         int    `json:"pid"`
		SandboxID   string `json:"sandboxID"`
		RuntimeSpec struct {
			Process struct {
				Args []string `json:"args"`
			} `json:"process"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(vs.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", vs.GetInfo()["info"], err)
	}
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.Pid)); info.Pid <= 0 || !strings.HasPrefix(string(cmdline), "/usr/bin/demoweb\x00") {
		t.Errorf("verbose info pid %d runs %q, want the container's /usr/bin/demoweb", info.Pid, cmdline)
	}
	if info.SandboxID != podID || strings.Join(info.RuntimeSpec.Process.Args, " ") != "/usr/bin/demoweb :8080" {
		t.Errorf("verbose info sandboxID %q, runtimeSpec args %q", info.SandboxID, info.RuntimeSpec.Process.Args)
	}

	// ExecSync: output and exit code.
	out, errOut, err := d.Runtime.ExecSync(ctx, webID, []string{"sh", "-c", "echo out; echo err >&2; exit 7"}, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "7") || string(out) != "out\n" || string(errOut) != "err\n" {
		t.Errorf("ExecSync = %q %q %v", out, errOut, err)
	}

	// A container that exits at once with code 3.
	failCfg := containerConfig("fail", imageName, "sh", "-c", "echo bye; exit 3")
	failID, err := d.Runtime.CreateContainer(ctx, podID, failCfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, failID); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d, failID, runtimeapi.ContainerState_CONTAINER_EXITED)
	if st.ExitCode != 3 || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Errorf("exited status = %v", st)
	}

	// A non-root user can use the image (the root dir and libraries are
	// reachable for it), and the CRI user fields say who it runs as.
	userCfg := containerConfig("user", imageName, "sh", "-c", "id -u; id -g; cat /etc/passwd >/dev/null && echo readable")
	userCfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 1002},
	}}
	userID, err := d.Runtime.CreateContainer(ctx, podID, userCfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, userID); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d, userID, runtimeapi.ContainerState_CONTAINER_EXITED)
	logText, _ := os.ReadFile(filepath.Join(logDir, "user.log"))
	if st.ExitCode != 0 || st.Reason != "Completed" || !strings.Contains(string(logText), "stdout F 1000\n") ||
		!strings.Contains(string(logText), "stdout F 1002\n") || !strings.Contains(string(logText), "stdout F readable") {
		t.Errorf("non-root container: exit %d %s, log:\n%s", st.ExitCode, st.Reason, logText)
	}
	if u := st.GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 1002 {
		t.Errorf("ContainerStatus.user = %v", u)
	}

	// Duplicate name → AlreadyExists; missing image → NotFound; bad log path → InvalidArgument.
	dup := containerConfig("web", imageName, "sleep", "1")
	if _, err := d.Runtime.CreateContainer(ctx, podID, dup, pod); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("nope", reg.Ref("it/absent:1")), pod); status.Code(err) != codes.NotFound {
		t.Errorf("absent image: %v", err)
	}
	bad := containerConfig("badlog", imageName)
	bad.LogPath = "/etc/evil.log"
	if _, err := d.Runtime.CreateContainer(ctx, podID, bad, pod); status.Code(err) != codes.InvalidArgument {
		t.Errorf("absolute log path: %v", err)
	}

	missing := containerConfig("nohost", imageName, "true")
	missing.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: filepath.Join(d.dir, "no-such-dir")}}
	if _, err := d.Runtime.CreateContainer(ctx, podID, missing, pod); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "no-such-dir") {
		t.Errorf("missing host path: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "containers")); len(entries) != 3 {
		t.Errorf("container dirs after failed creates = %d, want the 3 real containers", len(entries))
	}

	// The writable layers show in ImageFsInfo's container filesystem.
	fs, err := d.Images.ImageFsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cf := fs.GetContainerFilesystems(); len(cf) != 1 || cf[0].GetUsedBytes().GetValue() == 0 || cf[0].GetInodesUsed().GetValue() == 0 {
		t.Errorf("container filesystem usage = %v", cf)
	}

	// Listing and filters.
	list, err := d.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil || len(list) != 1 || list[0].Id != webID || list[0].ImageId != configDigest.String() {
		t.Errorf("running containers = %v %v", list, err)
	}
	list, _ = d.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: podID})
	if len(list) != 3 {
		t.Errorf("containers of the pod = %d, want 3", len(list))
	}

	// A daemon restart keeps the running container running.
	d.stop()
	d.start()
	st = waitState(t, d, webID, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if resp, err := http.Get("http://" + podIP + ":8080/"); err != nil {
		t.Errorf("web server after restart: %v", err)
	} else {
		resp.Body.Close()
	}

	// Stop with a grace period, idempotent; remove; pod teardown.
	if err := d.Runtime.StopContainer(ctx, webID, 5); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, d, webID, runtimeapi.ContainerState_CONTAINER_EXITED)
	if err := d.Runtime.StopContainer(ctx, webID, 5); err != nil {
		t.Errorf("second StopContainer: %v", err)
	}
	if err := d.Runtime.RemoveContainer(ctx, webID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.RemoveContainer(ctx, webID); err != nil {
		t.Errorf("second RemoveContainer: %v", err)
	}
	if err := d.Runtime.StopContainer(ctx, "0123456789abcdef0123", 0); err != nil {
		t.Errorf("StopContainer(unknown): %v", err)
	}
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if list, _ := d.Runtime.ListContainers(ctx, nil); len(list) != 0 {
		t.Errorf("containers left after RemovePodSandbox: %v", list)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), d.dir) {
		t.Errorf("mounts left under %s", d.dir)
	}
}
