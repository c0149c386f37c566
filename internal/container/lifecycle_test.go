package container

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// criLogLine is kubelet's log format: RFC 3339 nano time, stream, tag, text.
var criLogLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] (.*)$`)

func TestExitCodesReasonsAndLogs(t *testing.T) {
	e := newEnv(t)
	ok := e.run(e.ctrConfig("ok", "echo hello; echo oops >&2"))
	bad := e.run(e.ctrConfig("bad", "exit 3"))

	c := e.waitState(ok, Exited)
	if c.ExitCode != 0 || c.Reason != ReasonCompleted {
		t.Errorf("ok: exit %d reason %q, want 0 Completed", c.ExitCode, c.Reason)
	}
	if c.CreatedAt.IsZero() || c.StartedAt.Before(c.CreatedAt) || c.FinishedAt.Before(c.StartedAt) {
		t.Errorf("times out of order: created %v started %v finished %v", c.CreatedAt, c.StartedAt, c.FinishedAt)
	}
	if c.ImageRef != e.imageID || c.ImageName != e.imageRef {
		t.Errorf("image ref %q name %q, want %q %q", c.ImageRef, c.ImageName, e.imageID, e.imageRef)
	}
	if want := filepath.Join(e.pod.LogDirectory, "ok/0.log"); c.LogPath != want {
		t.Errorf("log path %q, want %q", c.LogPath, want)
	}
	if c.User.UID != 0 || c.User.GID != 0 {
		t.Errorf("user %+v, want root", c.User)
	}
	st := c.CRIStatus()
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.Metadata.GetName() != "ok" || st.FinishedAt == 0 {
		t.Errorf("CRI status %v", st)
	}

	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		m := criLogLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("log line %q is not in CRI format", line)
		}
		streams[m[2]] += m[3]
	}
	if streams["stdout"] != "hello" || streams["stderr"] != "oops" {
		t.Errorf("log streams %q", streams)
	}

	c = e.waitState(bad, Exited)
	if c.ExitCode != 3 || c.Reason != ReasonError {
		t.Errorf("bad: exit %d reason %q, want 3 Error", c.ExitCode, c.Reason)
	}
	// Start of an exited container is refused.
	if err := e.m.Start(ctxT(t), bad); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("start exited: %v, want FailedPrecondition", err)
	}
	// The Observer heard each start on the default handler and each exit
	// once (an exit right after it is recorded).
	eventually(t, 10*time.Second, "the observer to hear both exits", func() bool {
		return e.obs.get("exited Completed")+e.obs.get("exited Error") == 2
	})
	for k, want := range map[string]int{"started runc": 2, "exited Completed": 1, "exited Error": 1} {
		if got := e.obs.get(k); got != want {
			t.Errorf("observer %q = %d, want %d", k, got, want)
		}
	}
}

func TestStopKillsAfterTimeout(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.ctrConfig("stubborn", "trap '' TERM; echo ready; sleep 1000"))
	e.waitLog(id, "ready")

	const grace = 1500 * time.Millisecond
	start := time.Now()
	if err := e.m.Stop(ctxT(t), id, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took < grace || took > grace+10*time.Second {
		t.Errorf("Stop took %s, want a little over %s", took, grace)
	}
	c, err := e.m.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Exited || c.ExitCode != 137 || c.Reason != ReasonError {
		t.Errorf("after stop: %s exit %d %q, want exited 137 Error", c.State, c.ExitCode, c.Reason)
	}
	// Idempotent, and it neither waits nor changes the exit.
	start = time.Now()
	if err := e.m.Stop(ctxT(t), id, time.Minute); err != nil || time.Since(start) > time.Second {
		t.Errorf("second Stop: %v after %s", err, time.Since(start))
	}

	e.removeAndCheck(id)
}

func TestStopSignalFromConfig(t *testing.T) {
	e := newEnv(t)
	cfg := e.ctrConfig("usr1", "trap 'exit 7' USR1; echo ready; sleep 1000 & wait")
	cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1
	id := e.run(cfg)
	e.waitLog(id, "ready")
	if err := e.m.Stop(ctxT(t), id, time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.m.Status(id); c.ExitCode != 7 {
		t.Errorf("exit %d, want 7 from the USR1 trap", c.ExitCode)
	}
}

func TestRemoveRunningIsIdempotent(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.ctrConfig("runner", "sleep 1000"))
	e.waitState(id, Running)
	img, _, _ := e.images.Get(e.imageRef)
	// The container holds the image's layers: removing the image keeps them.
	if err := e.images.Remove(e.imageRef); err != nil {
		t.Fatal(err)
	}
	layerDir := e.layers.DiffDir(img.ChainIDs[0])
	if layerDir == "" {
		t.Fatal("image removal took the layer of a running container")
	}
	e.removeAndCheck(id)
	if _, err := os.Stat(layerDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer %s kept after its last user went (%v)", layerDir, err)
	}
	if err := e.m.Remove(ctxT(t), id); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := e.m.Status(id); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Status after Remove: %v, want NotFound", err)
	}
	// The name is free again.
	if _, err := e.images.Pull(ctxT(t), e.imageRef, nil, nil); err != nil {
		t.Fatal(err)
	}
	if id2 := e.create(e.ctrConfig("runner", "sleep 1000")); id2 == id {
		t.Error("a new create returned the removed container's ID")
	}
}

func TestExecSync(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.ctrConfig("exec", "sleep 1000"))
	e.waitState(id, Running)

	res, err := e.m.ExecSync(ctxT(t), id, []string{"sh", "-c", "echo out; echo err >&2; exit 4"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 4 {
		t.Errorf("exec: stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
	}
	start := time.Now()
	_, err = e.m.ExecSync(ctxT(t), id, []string{"sleep", "100"}, 500*time.Millisecond)
	if !errors.Is(err, errdefs.ErrDeadlineExceeded) {
		t.Errorf("exec past timeout: %v, want DeadlineExceeded", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("exec timeout took %s", time.Since(start))
	}
	if err := e.m.Stop(ctxT(t), id, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.ExecSync(ctxT(t), id, []string{"true"}, 0); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec in exited container: %v, want FailedPrecondition", err)
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	a := e.create(e.ctrConfig("a", "sleep 1000"))
	b := e.run(e.ctrConfig("b", "sleep 1000"))
	e.waitState(b, Running)

	ids := func(cs []Container) (out []string) {
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	running, created := Running, Created
	for name, tc := range map[string]struct {
		f    Filter
		want []string
	}{
		"all":      {Filter{}, []string{a, b}},
		"prefix":   {Filter{ID: b[:8]}, []string{b}},
		"running":  {Filter{State: &running}, []string{b}},
		"created":  {Filter{State: &created}, []string{a}},
		"label":    {Filter{Labels: map[string]string{"app": "a"}}, []string{a}},
		"pod":      {Filter{SandboxID: testPod}, []string{a, b}},
		"otherpod": {Filter{SandboxID: "nope"}, nil},
	} {
		if got := ids(e.m.List(tc.f)); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	if got := ids(e.m.ForSandbox(testPod)); len(got) != 2 {
		t.Errorf("ForSandbox: %v", got)
	}
	if err := e.m.StopSandbox(ctxT(t), testPod, 0); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.m.Status(b); c.State != Exited {
		t.Errorf("after StopSandbox: %s", c.State)
	}
	if err := e.m.RemoveSandbox(ctxT(t), testPod); err != nil {
		t.Fatal(err)
	}
	if got := e.m.List(Filter{}); len(got) != 0 {
		t.Errorf("after RemoveSandbox: %d containers", len(got))
	}
	e.assertClean()
}

// waitLog polls the container's log until it holds text, so a test knows
// the process got past its setup.
func (e *env) waitLog(id, text string) {
	e.t.Helper()
	c, err := e.m.Status(id)
	if err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 20*time.Second, "log line "+text, func() bool {
		data, _ := os.ReadFile(c.LogPath)
		return strings.Contains(string(data), text)
	})
}

// removeAndCheck removes a container and checks that its mount, bundle,
// record and runtime state are gone.
func (e *env) removeAndCheck(id string) {
	e.t.Helper()
	if err := e.m.Remove(ctxT(e.t), id); err != nil {
		e.t.Fatalf("Remove: %v", err)
	}
	for _, p := range []string{e.m.dir(id), e.m.bundle(id), filepath.Join(e.dir, "o", "ctr", id), filepath.Join(e.dir, "runc", id)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			e.t.Errorf("%s left after Remove (%v)", p, err)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), id) {
		e.t.Errorf("mount of %s left after Remove", id)
	}
}

func TestReopenLog(t *testing.T) {
	e := newEnv(t)
	id := e.run(e.ctrConfig("ticker", "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done"))
	e.waitLog(id, "tick2")
	c, _ := e.m.Status(id)
	if err := os.Rename(c.LogPath, c.LogPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.ReopenLog(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	e.waitLog(id, "tick")
	old, _ := os.ReadFile(c.LogPath + ".1")
	if !strings.Contains(string(old), "tick1") {
		t.Errorf("rotated log lost its lines: %q", old)
	}
	if err := e.m.Stop(ctxT(t), id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.m.ReopenLog(ctxT(t), id); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("reopen of exited container: %v, want FailedPrecondition", err)
	}
}

func TestTargetPIDNamespace(t *testing.T) {
	e := newEnv(t)
	target := e.run(e.ctrConfig("target", "sleep 1000"))
	e.waitState(target, Running)
	cfg := e.ctrConfig("debug", "cat /proc/1/cmdline")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
		Pid: runtimeapi.NamespaceMode_TARGET, TargetId: target,
	}
	c := e.waitState(e.run(cfg), Exited)
	data, _ := os.ReadFile(c.LogPath)
	if !strings.Contains(string(data), "sleep") {
		t.Errorf("PID 1 seen from the debug container: %q, want the target's sleep", data)
	}
	cfg = e.ctrConfig("debug2", "true")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_NODE, Ipc: runtimeapi.NamespaceMode_NODE,
		Pid: runtimeapi.NamespaceMode_TARGET, TargetId: "nope",
	}
	if _, err := e.m.Create(ctxT(t), testPod, cfg, e.pod); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown target: %v, want NotFound", err)
	}
}

func TestOOMKilledReason(t *testing.T) {
	e := newEnv(t)
	cfg := e.ctrConfig("hog", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 16 << 20, MemorySwapLimitInBytes: 16 << 20}
	c := e.waitState(e.run(cfg), Exited)
	// Which process the kernel picks may vary; the reason may not.
	if c.Reason != ReasonOOMKilled {
		t.Errorf("exit %d reason %q message %q, want OOMKilled", c.ExitCode, c.Reason, c.Message)
	}
	eventually(t, 10*time.Second, "the observer to hear the OOM kill", func() bool { return e.obs.get("exited OOMKilled") == 1 })
	if got := c.CRIStatus().GetResources().GetLinux().GetMemoryLimitInBytes(); got != 16<<20 {
		t.Errorf("status memory limit %d", got)
	}
}
