package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/check"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

// runCheck runs `cradle check` on the daemon's config.
func (d *daemon) runCheck(args ...string) cliRun {
	d.t.Helper()
	cmd := exec.Command(binary(d.t), append([]string{"check", "--config", d.config}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		d.t.Fatalf("cradle check %v: %v", args, err)
	}
	return r
}

func randomID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestCheckAfterCrash crashes a daemon with a pod worth keeping and a pod
// whose record is then lost, plants more damage, and has `cradle check`
// find all of it, repair it, and leave the kept pod working.
func TestCheckAfterCrash(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	img := reg.Ref("it/busybox:1")
	d, pod, keptPod, _ := podWithImage(t, "checkkeep", img)
	ctx := context.Background()
	ctr := runContainer(t, d, keptPod, pod, containerConfig("sleeper", img, "sleep", "3600"))
	// Sharing a PID namespace gives the pod an init (catatonit) under runc
	// and conmon: more to leave behind once its record is gone.
	lostPod, err := d.Runtime.RunPodSandbox(ctx, podConfig("checklost", runtimeapi.NamespaceMode_POD), "")
	if err != nil {
		t.Fatal(err)
	}

	r := d.runCheck()
	if r.code != 2 || !strings.Contains(r.stderr, "pid "+strconv.Itoa(d.cmd.Process.Pid)) {
		t.Fatalf("check beside a running daemon: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	initPid := runcStatePid(t, d, lostPod)
	d.kill()
	if err := os.Remove(filepath.Join(d.root, "pods", lostPod+".json")); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(d.state, "stray")
	if err := os.MkdirAll(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", stray, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	a := netip.MustParsePrefix(testSubnet).Addr().As4()
	a[3] = 250
	fakeIP := netip.AddrFrom4(a).String()
	if err := os.WriteFile(filepath.Join(d.dir, "ipam", "cradle-it", fakeIP), []byte(randomID()+"\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d.root, "layers", "tmp", "unpack-x", "diff"), 0o700); err != nil {
		t.Fatal(err)
	}
	badPod := randomID()
	if err := os.WriteFile(filepath.Join(d.root, "pods", badPod+".json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}

	r = d.runCheck()
	t.Logf("cradle check after the crash:\n%s", r.stdout)
	if r.code != 1 {
		t.Fatalf("check after the crash: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, line := range []string{
		"kind=pod object=" + lostPod + " problem=orphan-dir",
		"kind=runtime object=runc/" + lostPod + " problem=orphan",
		"kind=cni object=" + lostPod + " problem=orphan-attachment",
		"kind=ip object=cradle-it/" + fakeIP + " problem=leaked",
		"kind=mount object=" + stray + " problem=stale",
		"kind=layer object=tmp/unpack-x problem=temp",
		"kind=pod object=" + badPod + " problem=corrupt-record",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("no %q in\n%s", line, r.stdout)
		}
	}
	for _, id := range []string{keptPod, ctr} {
		if strings.Contains(r.stdout, "object="+id) || strings.Contains(r.stdout, "/"+id+" ") {
			t.Errorf("a finding names %s, which has a valid record:\n%s", id, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "object=runc/init ") {
		t.Errorf("a pod init's attach link taken for a container named init:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "status=inconsistent") {
		t.Errorf("no summary:\n%s", r.stdout)
	}

	r = d.runCheck("--repair", "-o", "json")
	t.Logf("cradle check --repair:\n%s", r.stdout)
	var rep struct {
		Findings []struct{ Kind, Object, Problem, Result, Error string }
		Clean    bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.Clean {
		t.Fatalf("repair: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for _, f := range rep.Findings {
		if f.Result != "repaired" {
			t.Errorf("not repaired: %+v", f)
		}
	}
	if r = d.runCheck(); r.code != 0 {
		t.Fatalf("check after the repair: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The same check from Go, as crash-point tests run it.
	cfg, err := check.FromFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := check.Run(ctx, cfg, check.Options{}); err != nil || !rep.Clean() {
		t.Fatalf("check.Run after the repair: %v %+v", err, rep)
	}
	if err := unix.Kill(initPid, 0); err == nil && !zombie(initPid) {
		t.Errorf("the lost pod's init (pid %d) still runs", initPid)
	}
	for _, m := range mountsUnder(t, d.dir) {
		if strings.Contains(m, lostPod) || m == stray {
			t.Errorf("still mounted: %s", m)
		}
	}
	if _, err := os.Stat(filepath.Join(d.root, "pods", badPod+".json.corrupt")); err != nil {
		t.Errorf("the torn record was not set aside: %v", err)
	}

	// Nothing the repair did touched the kept pod: a new daemon serves it.
	d.start()
	st, err := d.Runtime.PodSandboxStatus(ctx, keptPod, false)
	if err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("kept pod after the repair: %v %v", st.GetStatus().GetState(), err)
	}
	waitState(t, d, ctr, runtimeapi.ContainerState_CONTAINER_RUNNING)
	if out, err := execOut(d, ctr, "true"); err != nil {
		t.Errorf("exec in the kept container: %v %s", err, out)
	}
}

// runcStatePid is the pid of a runtime container of the daemon's runc.
func runcStatePid(t *testing.T, d *daemon, id string) int {
	t.Helper()
	out, err := exec.Command("runc", "--root", filepath.Join(d.state, "runtime", "runc"), "state", id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", id, err)
	}
	var st struct{ Pid int }
	if err := json.Unmarshal(out, &st); err != nil || st.Pid <= 0 {
		t.Fatalf("runc state %s: %v %s", id, err, out)
	}
	return st.Pid
}

// zombie says whether pid has exited and waits for its parent.
func zombie(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(st), ')')
	return i > 0 && i+2 < len(st) && st[i+2] == 'Z'
}
