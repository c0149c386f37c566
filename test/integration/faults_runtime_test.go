package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// hangingRuntime is a runtime handler's binary that hands every command to
// runc, except those whose hang-<command> file exists in its dir: these
// note their pid in hung-<command> and sleep, through a copy of sleep whose
// path names this test, so a leaked one is found by its /proc/<pid>/exe.
type hangingRuntime struct {
	dir, script, sleep string
	daemon             *daemon // whose zombies count; set once it runs
}

func newHangingRuntime(t *testing.T) *hangingRuntime {
	t.Helper()
	h := &hangingRuntime{dir: t.TempDir()}
	h.script = filepath.Join(h.dir, "slow-runtime")
	h.sleep = hungSleep(t, h.dir)
	script := fmt.Sprintf(`#!/bin/sh
dir=%q
sub=
for a in "$@"; do
  case "$a" in create|start|kill|delete|state|features|update|exec|list|ps|pause|resume) sub=$a; break ;; esac
done
if [ -n "$sub" ] && [ -e "$dir/hang-$sub" ]; then
  echo $$ >"$dir/hung-$sub"
  "$dir/hung-sleep" 3600
  exit 1
fi
exec runc "$@"
`, h.dir)
	if err := os.WriteFile(h.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Whatever the daemon left: the test fails on it (leaked), but the
		// host does not keep it.
		for _, pid := range h.processes() {
			_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
		}
	})
	return h
}

// killSleeps ends the hung commands as a runtime failing would: their
// sleeps die and the scripts exit 1.
func (h *hangingRuntime) killSleeps(t *testing.T) {
	t.Helper()
	for _, pid := range h.processes() {
		if exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); exe == h.sleep {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Logf("kill %d: %v", pid, err)
			}
		}
	}
}

// hang makes command hang from now on; the returned function stops that.
func (h *hangingRuntime) hang(t *testing.T, command string) (release func()) {
	t.Helper()
	os.Remove(filepath.Join(h.dir, "hung-"+command))
	if err := os.WriteFile(filepath.Join(h.dir, "hang-"+command), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() { os.Remove(filepath.Join(h.dir, "hang-"+command)) }
}

// waitHung waits until command has been called and is hanging.
func (h *hangingRuntime) waitHung(t *testing.T, command string) {
	t.Helper()
	eventually(t, 30*time.Second, "the runtime's "+command+" to hang", func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "hung-"+command))
		return err == nil
	})
}

// isZombieSleep: a zombie has no exe link, but its comm is still the
// sleep copy's name. The daemon is a child subreaper: a hung script's
// child killed with it is re-parented to the daemon, which must reap it.
// Only d's zombies count (another test run may have its own).
func isZombieSleep(d *daemon, pid int) bool {
	if d == nil || d.cmd == nil || d.cmd.Process == nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err == nil && strings.Contains(string(stat), fmt.Sprintf("(hung-sleep) Z %d ", d.cmd.Process.Pid))
}

// hungSleep copies sleep into dir as hung-sleep: a hanging fake's sleep
// then names its test in /proc/<pid>/exe, so a leaked one is found.
func hungSleep(t *testing.T, dir string) string {
	t.Helper()
	sleepBin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	b, err := os.ReadFile(sleepBin)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "hung-sleep")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// sleepProcesses lists the processes running the copy sleep, the zombie
// hung-sleeps of d, and those more (when set) accepts.
func sleepProcesses(sleep string, d *daemon, more func(pid int) bool) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if exe == sleep || isZombieSleep(d, pid) || (more != nil && more(pid)) {
			out = append(out, pid)
		}
	}
	return out
}

// processes lists live processes of the hanging runtime: its sleeps and
// shells running its script.
func (h *hangingRuntime) processes() []int {
	return sleepProcesses(h.sleep, h.daemon, h.runsScript)
}

// runsScript: a shell running the script, argv [/bin/sh, script, ...].
// (The conmons of the handler's containers name the script too, as -r.)
func (h *hangingRuntime) runsScript(pid int) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	if argv := strings.Split(string(cmdline), "\x00"); len(argv) < 2 || argv[1] != h.script {
		return false
	}
	stat, _ := os.ReadFile(filepath.Join(dir, "stat"))
	return !strings.Contains(string(stat), ") Z ")
}

func (h *hangingRuntime) assertNoneLeft(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := h.processes()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var pids []string
			for _, p := range left {
				pids = append(pids, strconv.Itoa(p))
			}
			out, _ := exec.Command("ps", "-o", "pid,ppid,pgid,stat,args", "-p", strings.Join(pids, ",")).CombinedOutput()
			t.Fatalf("the hung runtime's processes are still there 30s %s:\n%s", when, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// callTimeout is the slow handler's call_timeout: a hung runtime command
// fails after it.
const callTimeout = 8 * time.Second

// A runtime that hangs on create, start or kill: the call fails with
// DeadlineExceeded within the handler's call_timeout (or the caller's
// deadline, whichever is first), its processes are killed, other pods on
// the default handler proceed meanwhile, and the object can be stopped and
// removed once the runtime answers again.
func TestFaultRuntimeHangs(t *testing.T) {
	needRoot(t)
	h := newHangingRuntime(t)
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}},
		testkit.Must(testkit.BusyboxLayer(testkit.Gzip))))
	imageRef := reg.Ref("it/busybox:1")
	d := newDaemonFiles(t, daemonOpts{extraConfig: fmt.Sprintf(
		"[runtime.handlers.slow]\npath = %q\ncall_timeout = %q\n[runtime.handlers.stuck]\npath = %q\ncall_timeout = \"4m\"\n",
		h.script, callTimeout, h.script)})
	withTestNetwork(t, d)
	d.start()
	h.daemon = d
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(d.dir, "logs")
	podOn := func(name string) *runtimeapi.PodSandboxConfig {
		p := podConfig(name, runtimeapi.NamespaceMode_POD) // the init runs on the pod's handler
		p.LogDirectory = logDir
		return p
	}

	// 1. RunPodSandbox: the init's create hangs, on a handler whose
	// call_timeout is far away. The caller's deadline ends the call; the
	// Run goes on. A runc pod runs meanwhile, however slow this host: the
	// hung create is still there when it is done. Then the runtime fails
	// (its sleep is killed) and the Run undoes itself.
	release := h.hang(t, "create")
	type result struct {
		err     error
		elapsed time.Duration
	}
	slowDone := make(chan result, 1)
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := d.Runtime.RunPodSandbox(cctx, podOn("hung-init"), "stuck")
		slowDone <- result{err, time.Since(start)}
	}()
	h.waitHung(t, "create")
	// Meanwhile a pod on runc, with its own init, runs.
	fastID, err := d.Runtime.RunPodSandbox(ctx, podOn("fast"), "")
	if err != nil {
		t.Fatalf("a runc pod while another handler hangs: %v", err)
	}
	if len(h.processes()) == 0 {
		t.Error("the runc pod only ran once the hung create had ended")
	}
	r := <-slowDone
	if status.Code(r.err) != codes.DeadlineExceeded || r.elapsed > callTimeout {
		t.Errorf("RunPodSandbox on a hung runtime = %v after %v, want DeadlineExceeded within 3s", r.err, r.elapsed)
	}
	h.killSleeps(t)
	h.assertNoneLeft(t, "after the hung create failed")
	eventually(t, 30*time.Second, "the failed pod to be undone", func() bool {
		pods, err := d.Runtime.ListPodSandbox(ctx, nil)
		return err == nil && len(pods) == 1 && pods[0].Id == fastID
	})
	release()

	// The same through call_timeout alone (no caller deadline).
	release = h.hang(t, "create")
	start := time.Now()
	_, err = d.Runtime.RunPodSandbox(ctx, podOn("hung-init-2"), "slow")
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 3*callTimeout {
		t.Errorf("RunPodSandbox on a hung runtime without a caller deadline = %v after %v, want DeadlineExceeded after %v",
			err, time.Since(start), callTimeout)
	}
	h.assertNoneLeft(t, "after the pod's create hit call_timeout")
	release()

	// 2. A pod on the slow handler, working.
	slowPod := podOn("slow")
	slowID, err := d.Runtime.RunPodSandbox(ctx, slowPod, "slow")
	if err != nil {
		t.Fatalf("RunPodSandbox on the slow handler once it answers: %v", err)
	}

	// 3. CreateContainer: create hangs.
	release = h.hang(t, "create")
	start = time.Now()
	_, err = d.Runtime.CreateContainer(ctx, slowID, containerConfig("hung-create", imageRef, "sleep", "3600"), slowPod)
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 3*callTimeout {
		t.Errorf("CreateContainer on a hung runtime = %v after %v", err, time.Since(start))
	}
	h.assertNoneLeft(t, "after CreateContainer")
	release()
	eventually(t, 30*time.Second, "the failed container to be undone", func() bool {
		ctrs, err := d.Runtime.ListContainers(ctx, nil)
		return err == nil && len(ctrs) == 0
	})

	// 4. StartContainer: start hangs; a retry after works.
	id, err := d.Runtime.CreateContainer(ctx, slowID, containerConfig("hung-start", imageRef, "sleep", "3600"), slowPod)
	if err != nil {
		t.Fatalf("CreateContainer once the runtime answers: %v", err)
	}
	release = h.hang(t, "start")
	err = d.Runtime.StartContainer(ctx, id)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("StartContainer on a hung runtime = %v", err)
	}
	h.assertNoneLeft(t, "after StartContainer")
	release()
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("StartContainer once the runtime answers: %v", err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)

	// 5. StopContainer: kill hangs. Meanwhile a container on runc starts.
	release = h.hang(t, "kill")
	stopDone := make(chan error, 1)
	go func() { stopDone <- d.Runtime.StopContainer(ctx, id, 0) }()
	h.waitHung(t, "kill")
	fastPod := podOn("fast")
	runContainer(t, d, fastID, fastPod, containerConfig("fast", imageRef, "sleep", "3600"))
	if err := <-stopDone; status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("StopContainer on a hung runtime = %v", err)
	}
	h.assertNoneLeft(t, "after StopContainer")
	release()
	// The runtime's delete runs when the container has exited (the
	// part of the removal that can go early): it hangs there first.
	release = h.hang(t, "delete")
	if err := d.Runtime.StopContainer(ctx, id, 0); err != nil {
		t.Errorf("StopContainer once the runtime answers: %v", err)
	}
	h.waitHung(t, "delete")

	// 6. RemoveContainer: delete hangs; the removal finishes later.
	if err := d.Runtime.RemoveContainer(ctx, id); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("RemoveContainer on a hung runtime = %v", err)
	}
	h.assertNoneLeft(t, "after RemoveContainer")
	release()
	if err := d.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Errorf("RemoveContainer once the runtime answers: %v", err)
	}
	if _, err := d.Runtime.ContainerStatus(ctx, id, false); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus after the removal = %v, want NotFound", err)
	}

	// 7. StopPodSandbox: the init's kill hangs.
	release = h.hang(t, "kill")
	if err := d.Runtime.StopPodSandbox(ctx, slowID); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("StopPodSandbox on a hung runtime = %v", err)
	}
	h.assertNoneLeft(t, "after StopPodSandbox")
	release()
	if err := d.Runtime.StopPodSandbox(ctx, slowID); err != nil {
		t.Errorf("StopPodSandbox once the runtime answers: %v", err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, slowID); err != nil {
		t.Errorf("RemovePodSandbox once the runtime answers: %v", err)
	}
}
