package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// faultyPlugin is a CNI plugin chained after the bridge: it passes the
// bridge's result on, unless a file <dir>/<command>-fail or
// <dir>/<command>-hang (command: add, del) says to fail with a CNI error or
// to hang (noting hung-<command>, through a copy of sleep whose path names
// this test, so a leaked one is found by its /proc/<pid>/exe).
type faultyPlugin struct {
	dir, sleep string
	daemon     *daemon // whose zombies count; set once it runs
}

func newFaultyPlugin(t *testing.T) *faultyPlugin {
	t.Helper()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("the fake CNI plugin needs perl (perl-base) to pass its previous result on")
	}
	p := &faultyPlugin{dir: t.TempDir()}
	p.sleep = hungSleep(t, p.dir)
	script := fmt.Sprintf(`#!/bin/sh
dir=%q
cmd=$(echo "$CNI_COMMAND" | tr A-Z a-z)
if [ -e "$dir/$cmd-hang" ]; then
  echo $$ >"$dir/hung-$cmd"
  "$dir/hung-sleep" 3600
  exit 1
fi
if [ -e "$dir/$cmd-fail" ]; then
  echo "{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"planned $cmd failure from the faulty plugin\"}"
  exit 1
fi
case "$CNI_COMMAND" in
ADD) exec perl -0777 -ne 'print $1 if /"prevResult":(\{(?:[^{}]|(?1))*\})/' ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`, p.dir)
	if err := os.WriteFile(filepath.Join(p.dir, "faulty"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range p.processes() {
			_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
		}
	})
	return p
}

// set makes command ("add", "del") fail or hang ("fail", "hang") until the
// returned function is called.
func (p *faultyPlugin) set(t *testing.T, command, fault string) (fixed func()) {
	t.Helper()
	os.Remove(filepath.Join(p.dir, "hung-"+command))
	f := filepath.Join(p.dir, command+"-"+fault)
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return func() { os.Remove(f) }
}

func (p *faultyPlugin) processes() []int { return sleepProcesses(p.sleep, p.daemon, nil) }

func (p *faultyPlugin) assertNoneLeft(t *testing.T, when string) {
	t.Helper()
	eventually(t, 30*time.Second, "the hung plugin to be killed "+when, func() bool {
		return len(p.processes()) == 0
	})
}

// cniCallTimeout is the daemon's [cni] call_timeout in these tests.
const cniCallTimeout = 6 * time.Second

// cniFaultDaemon starts a daemon whose network is bridge → faulty.
func cniFaultDaemon(t *testing.T) (*daemon, *faultyPlugin) {
	t.Helper()
	needRoot(t)
	p := newFaultyPlugin(t)
	d := newDaemonFiles(t, daemonOpts{extraConfig: fmt.Sprintf("plugin_dirs = [%q, \"/usr/lib/cni\"]\ncall_timeout = %q\n", p.dir, cniCallTimeout)})
	withTestNetwork(t, d)
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"cradle-faults","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"faulty"}]}`, testBridge, testSubnet, filepath.Join(d.dir, "ipam"))
	if err := os.WriteFile(filepath.Join(d.dir, "cni", "10-cradle-it.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	p.daemon = d
	return d, p
}

// netLeft lists what a pod's network can leave behind: IP leases, CNI
// cache entries, pinned namespaces, pod records.
func (d *daemon) netLeft() []string {
	var left []string
	leases, _ := filepath.Glob(filepath.Join(d.dir, "ipam", "cradle-faults", "10.*"))
	left = append(left, leases...)
	cached, _ := filepath.Glob(filepath.Join(d.root, "cni-cache", "results", "*"))
	left = append(left, cached...)
	for _, m := range mountsUnder(d.t, d.state) {
		left = append(left, "mount "+m)
	}
	records, _ := filepath.Glob(filepath.Join(d.root, "pods", "*"))
	left = append(left, records...)
	return left
}

func (d *daemon) assertNetClean(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := d.netLeft()
		pods, err := d.Runtime.ListPodSandbox(context.Background(), nil)
		if err == nil && len(pods) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: left behind: pods %v, %v", when, pods, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cniPod(name string) *runtimeapi.PodSandboxConfig {
	return podConfig(name, runtimeapi.NamespaceMode_CONTAINER)
}

// A CNI ADD that fails or hangs fails RunPodSandbox cleanly and leaves no
// IP, no cache entry, no namespace pin and no record.
func TestFaultCNIAdd(t *testing.T) {
	d, p := cniFaultDaemon(t)
	ctx := context.Background()

	fixed := p.set(t, "add", "fail")
	_, err := d.Runtime.RunPodSandbox(ctx, cniPod("add-fail"), "")
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "planned add failure from the faulty plugin") {
		t.Errorf("RunPodSandbox with a failing ADD = %v, want Unavailable with the plugin's message", err)
	}
	d.assertNetClean(t, "after a failed ADD")
	fixed()

	// ADD hangs; the caller gives up first, the Run is bounded by
	// call_timeout and undone.
	fixed = p.set(t, "add", "hang")
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	_, err = d.Runtime.RunPodSandbox(cctx, cniPod("add-hang"), "")
	cancel()
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > cniCallTimeout {
		t.Errorf("RunPodSandbox with a hung ADD = %v after %v, want DeadlineExceeded at the caller's deadline", err, time.Since(start))
	}
	p.assertNoneLeft(t, "after the ADD's call_timeout")
	d.assertNetClean(t, "after a hung ADD")

	// Without a caller deadline: call_timeout ends it.
	start = time.Now()
	_, err = d.Runtime.RunPodSandbox(ctx, cniPod("add-hang-2"), "")
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 3*cniCallTimeout {
		t.Errorf("RunPodSandbox with a hung ADD = %v after %v, want DeadlineExceeded after %v", err, time.Since(start), cniCallTimeout)
	}
	p.assertNoneLeft(t, "after the ADD's call_timeout")
	d.assertNetClean(t, "after a hung ADD")
	fixed()

	// The network works again.
	id, err := d.Runtime.RunPodSandbox(ctx, cniPod("add-ok"), "")
	if err != nil {
		t.Fatalf("RunPodSandbox once the plugin works: %v", err)
	}
	if st, err := d.Runtime.PodSandboxStatus(ctx, id, false); err != nil || st.GetStatus().GetNetwork().GetIp() == "" {
		t.Errorf("pod status: %v %v", st, err)
	}
}

// A CNI DEL that fails: StopPodSandbox fails with the plugin's message and
// works once the plugin does; RemovePodSandbox finishes once DEL works. A
// DEL that hangs is bounded.
func TestFaultCNIDel(t *testing.T) {
	d, p := cniFaultDaemon(t)
	ctx := context.Background()

	id, err := d.Runtime.RunPodSandbox(ctx, cniPod("del-fail"), "")
	if err != nil {
		t.Fatal(err)
	}
	fixed := p.set(t, "del", "fail")
	err = d.Runtime.StopPodSandbox(ctx, id)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "planned del failure from the faulty plugin") {
		t.Errorf("StopPodSandbox with a failing DEL = %v, want Unavailable with the plugin's message", err)
	}
	if err := d.Runtime.StopPodSandbox(ctx, id); err == nil {
		t.Error("a second StopPodSandbox with DEL still failing succeeded")
	}
	err = d.Runtime.RemovePodSandbox(ctx, id)
	if err == nil || !strings.Contains(err.Error(), "planned del failure") {
		t.Errorf("RemovePodSandbox with a failing DEL = %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, id, false); err != nil {
		t.Errorf("the pod whose DEL failed is gone from status: %v", err)
	}
	fixed()
	if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Errorf("StopPodSandbox once DEL works: %v", err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Errorf("RemovePodSandbox once DEL works: %v", err)
	}
	d.assertNetClean(t, "after DEL worked")

	// Remove without a Stop first, while DEL fails.
	id, err = d.Runtime.RunPodSandbox(ctx, cniPod("del-fail-remove"), "")
	if err != nil {
		t.Fatal(err)
	}
	fixed = p.set(t, "del", "fail")
	if err := d.Runtime.RemovePodSandbox(ctx, id); err == nil {
		t.Error("RemovePodSandbox with a failing DEL succeeded")
	}
	fixed()
	if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Errorf("RemovePodSandbox once DEL works: %v", err)
	}
	d.assertNetClean(t, "after a Remove whose DEL worked on retry")

	// DEL hangs: the stop fails within call_timeout.
	id, err = d.Runtime.RunPodSandbox(ctx, cniPod("del-hang"), "")
	if err != nil {
		t.Fatal(err)
	}
	fixed = p.set(t, "del", "hang")
	start := time.Now()
	err = d.Runtime.StopPodSandbox(ctx, id)
	if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 3*cniCallTimeout {
		t.Errorf("StopPodSandbox with a hung DEL = %v after %v, want DeadlineExceeded after %v", err, time.Since(start), cniCallTimeout)
	}
	p.assertNoneLeft(t, "after the DEL's call_timeout")
	fixed()
	if err := d.Runtime.StopPodSandbox(ctx, id); err != nil {
		t.Errorf("StopPodSandbox once DEL works: %v", err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, id); err != nil {
		t.Errorf("RemovePodSandbox once DEL works: %v", err)
	}
	d.assertNetClean(t, "after a hung DEL worked on retry")
}
