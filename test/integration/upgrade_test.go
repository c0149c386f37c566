package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// unitExecStart is the command line of contrib/systemd/cradle.service.
func unitExecStart(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "contrib", "systemd", "cradle.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("no ExecStart in the unit")
	return nil
}

// A package upgrade replaces /usr/bin/cradle under the running daemon
// (dpkg renames the new file over it) and restarts the service: SIGTERM
// (KillMode=process reaches only the daemon), then the new binary starts.
// Every container keeps running and stays manageable.
func TestUpgradeKeepsContainersRunning(t *testing.T) {
	needRoot(t)
	// The unit runs `cradle daemon` and nothing else: the test adds only
	// --config, to keep its paths private, and the unit's environment.
	if args := unitExecStart(t); len(args) != 2 || args[0] != "/usr/bin/cradle" || args[1] != "daemon" {
		t.Fatalf("the unit's ExecStart changed to %v: make this test start the daemon the same way", args)
	}
	_, image := featureImage(t)
	d := newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	notes := listenNotify(t, d.dir)
	d.env = []string{"NOTIFY_SOCKET=" + notes.path, "WATCHDOG_USEC=60000000"}

	// The installed binary, and the next release: the same code linked
	// with another version string.
	usrBin := filepath.Join(d.dir, "usr", "bin")
	if err := os.MkdirAll(usrBin, 0o755); err != nil {
		t.Fatal(err)
	}
	// cradle and cradled, which `cradle daemon` execs from beside itself.
	bins := []string{"cradle", "cradled"}
	for _, b := range bins {
		copyFile(t, filepath.Join(filepath.Dir(binary(t)), b), filepath.Join(usrBin, b))
	}
	installed := filepath.Join(usrBin, "cradle")
	next := t.TempDir()
	build := exec.Command("go", "build", "-race", "-tags", "crashpoints",
		"-ldflags", "-X github.com/cradle-runtime/cradle/internal/version.Version=9.9.9-upgrade",
		"-o", next+"/", "github.com/cradle-runtime/cradle/cmd/cradle", "github.com/cradle-runtime/cradle/cmd/cradled")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the next release: %v\n%s", err, out)
	}

	d.bin = installed
	d.start()
	notes.await(t, "READY=1")
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	var pods, ctrs []string
	for _, pid := range []runtimeapi.NamespaceMode{runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD} {
		pod := podConfig("upgrade-"+strings.ToLower(pid.String()), pid)
		pod.LogDirectory = t.TempDir()
		id, err := d.Runtime.RunPodSandbox(ctx, pod, "")
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, id)
		for _, name := range []string{"one", "two"} {
			ctrs = append(ctrs, runContainer(t, d, id, pod, containerConfig(name, image, "sleep", "3600")))
		}
	}
	pidsBefore := map[string]int{}
	for _, id := range ctrs {
		pidsBefore[id] = containerPid(t, d, id)
	}

	// dpkg's unpack: each new file next to the old, renamed over it.
	for _, b := range bins {
		dst := filepath.Join(usrBin, b)
		copyFile(t, filepath.Join(next, b), dst+".dpkg-new")
		if err := os.Rename(dst+".dpkg-new", dst); err != nil {
			t.Fatal(err)
		}
	}
	d.stop() // systemctl restart: SIGTERM to the main PID only
	notes.await(t, "STOPPING=1")
	d.start()
	notes.await(t, "READY=1")

	v, err := d.Runtime.Version(ctx, "v1")
	if err != nil || v.GetRuntimeVersion() != "9.9.9-upgrade" {
		t.Fatalf("after the upgrade the daemon reports %v (%v)", v, err)
	}
	for _, id := range ctrs {
		waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
		if pid := containerPid(t, d, id); pid != pidsBefore[id] {
			t.Errorf("container %s has pid %d after the upgrade, %d before: it was restarted", id, pid, pidsBefore[id])
		}
	}
	// Manageable: exec into one, stop one, then the pods go.
	if stdout, _, err := d.Runtime.ExecSync(ctx, ctrs[0], []string{"echo", "upgraded"}, 0); err != nil || strings.TrimSpace(string(stdout)) != "upgraded" {
		t.Errorf("exec after the upgrade: %q %v", stdout, err)
	}
	if err := d.Runtime.StopContainer(ctx, ctrs[1], 10); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, ctrs[1], runtimeapi.ContainerState_CONTAINER_EXITED)
	for _, id := range pods {
		if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Images.RemoveImage(ctx, spec(image)); err != nil {
		t.Fatal(err)
	}
	d.assertNoTrace(t, append(pods, ctrs...))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
