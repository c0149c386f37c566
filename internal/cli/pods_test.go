package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod IDs: podA and podB share the prefix "aa", podC starts with "bc".
var (
	podA = "aa11" + strings.Repeat("0", 60)
	podB = "aa22" + strings.Repeat("0", 60)
	podC = "bc33" + strings.Repeat("0", 60)
)

func agoNanos(d time.Duration) int64 { return time.Now().Add(-d).UnixNano() }

// newRuntimeFake is a fake with three pods and three containers.
func newRuntimeFake(t *testing.T) (*fakeCRI, string) {
	f, ep := newFake(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rt.newPodID, f.rt.newCtrID = "newpod", "newctr"
	f.rt.pods = []*runtimeapi.PodSandbox{
		{Id: podA, Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"},
			State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: agoNanos(3 * time.Hour), Labels: map[string]string{"app": "web"}},
		{Id: podB, Metadata: &runtimeapi.PodSandboxMetadata{Name: "db", Namespace: "prod", Uid: "u2", Attempt: 2},
			State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY, CreatedAt: agoNanos(90 * time.Second), RuntimeHandler: "kata"},
		{Id: podC, Metadata: &runtimeapi.PodSandboxMetadata{Name: "web-2", Namespace: "default", Uid: "u3"},
			State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: agoNanos(50 * time.Hour), Labels: map[string]string{"app": "web"}},
	}
	f.containers = fixtureContainers()
	return f, ep
}

func row(widths []int, cells ...string) string {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		fmt.Fprintf(&b, "%-*s", widths[i], c)
	}
	return b.String() + "\n"
}

func TestPodsTable(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	r := runCLI(t, ep, "pods")
	mustSucceed(t, r)
	w := []int{20, 21, 20, 20, 20, 20}
	want := row(w, "POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME") +
		row(w, podB[:13], "About a minute ago", "NotReady", "db", "prod", "2", "kata") +
		row(w, podA[:13], "3 hours ago", "Ready", "web", "default", "0", "(default)") +
		row(w, podC[:13], "2 days ago", "Ready", "web-2", "default", "0", "(default)")
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	if l := requests(f, &f.rt.listPods); len(l) != 1 || !proto.Equal(l[0].Filter, &runtimeapi.PodSandboxFilter{}) {
		t.Errorf("list requests %v", l)
	}

	r = runCLI(t, ep, "pods", "--no-trunc", "--latest")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, podB+"   ") || strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("--no-trunc --latest:\n%s", r.stdout)
	}
}

func TestPodsFilters(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--name", "^web"}, []string{podA, podC}},
		{[]string{"--name", "^web$"}, []string{podA}},
		{[]string{"--namespace", "pro"}, []string{podB}},
		{[]string{"--last", "2"}, []string{podB, podA}},
		{[]string{"-l"}, []string{podB}},
		{[]string{"--state", "NotReady"}, []string{podB}},
		{[]string{"--id", "aa", "--state", "ready", "--label", "app=web"}, []string{podA}},
	} {
		r := runCLI(t, ep, append([]string{"pods", "-q"}, tc.args...)...)
		mustSucceed(t, r)
		if want := strings.Join(tc.want, "\n") + "\n"; r.stdout != want {
			t.Errorf("%v: got %q, want %q", tc.args, r.stdout, want)
		}
	}
	// The runtime gets the ID, state and label filters; names are matched here.
	l := requests(f, &f.rt.listPods)
	want := &runtimeapi.PodSandboxFilter{
		Id:            "aa",
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"app": "web"},
	}
	if !proto.Equal(l[len(l)-1].Filter, want) {
		t.Errorf("filter %v, want %v", l[len(l)-1].Filter, want)
	}
	if !proto.Equal(l[0].Filter, &runtimeapi.PodSandboxFilter{}) {
		t.Errorf("--name sent filter %v", l[0].Filter)
	}

	r := runCLI(t, ep, "pods", "-o", "json", "--name", "db")
	mustSucceed(t, r)
	var doc struct {
		Items []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Items) != 1 || doc.Items[0].ID != podB || doc.Items[0].State != "SANDBOX_NOTREADY" {
		t.Errorf("json %+v (%v):\n%s", doc, err, r.stdout)
	}

	n := len(requests(f, &f.rt.listPods))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"pods", "--state", "running"}, `--state "running": want ready or notready`},
		{[]string{"pods", "--name", "("}, `--name "(" is not a regular expression`},
		{[]string{"pods", "--label", "novalue"}, `--label "novalue": want KEY=VALUE`},
		{[]string{"pods", "-l", "-n", "2"}, "--latest and --last exclude each other"},
		{[]string{"pods", "-o", "wide"}, `unsupported output format "wide"`},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.msg)
	}
	if got := len(requests(f, &f.rt.listPods)); got != n {
		t.Errorf("bad flags still listed pods (%d calls)", got-n)
	}
}

func TestRunp(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	pod := writeFile(t, "pod.json", podJSON)
	r := runCLI(t, ep, "runp", "--runtime", "kata", pod)
	mustSucceed(t, r)
	if r.stdout != "newpod\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	runs := requests(f, &f.rt.runPods)
	want := &runtimeapi.RunPodSandboxRequest{Config: wantPod(), RuntimeHandler: "kata"}
	if len(runs) != 1 || !proto.Equal(runs[0], want) {
		t.Errorf("requests %v, want %v", runs, want)
	}

	mustFail(t, runCLI(t, ep, "runp", "/nonexistent/pod.json"), "config file /nonexistent/pod.json not found")
	mustFail(t, runCLI(t, ep, "runp"), `"cradle runp" needs a POD_CONFIG file`)
	if n := len(requests(f, &f.rt.runPods)); n != 1 {
		t.Errorf("%d run requests after failures, want 1", n)
	}
}

func TestInspectp(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	r := runCLI(t, ep, "inspectp", "bc")
	mustSucceed(t, r)
	var doc struct {
		Status struct {
			ID      string `json:"id"`
			State   string `json:"state"`
			Network struct {
				IP string `json:"ip"`
			} `json:"network"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if doc.Status.ID != podC || doc.Status.State != "SANDBOX_READY" || doc.Status.Network.IP != "10.88.0.2" || doc.Info.Pid != 42 {
		t.Errorf("document %+v", doc)
	}
	st := requests(f, &f.rt.podStatuses)
	if len(st) != 1 || !proto.Equal(st[0], &runtimeapi.PodSandboxStatusRequest{PodSandboxId: podC, Verbose: true}) {
		t.Errorf("status requests %v", st)
	}

	r = runCLI(t, ep, "inspectp", "-q", "-o", "yaml", podA, "aa2")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "- status:\n    id: "+podA+"\n") || !strings.Contains(r.stdout, "- status:\n    id: "+podB+"\n") || strings.Contains(r.stdout, "pid") {
		t.Errorf("yaml:\n%s", r.stdout)
	}
	if st := requests(f, &f.rt.podStatuses); st[1].Verbose {
		t.Errorf("-q asked for verbose status")
	}

	n := len(requests(f, &f.rt.podStatuses))
	mustFail(t, runCLI(t, ep, "inspectp", "aa"), `Error: pod sandbox ID prefix "aa" is ambiguous: it matches `+podA+", "+podB+"\n")
	mustFail(t, runCLI(t, ep, "inspectp", "zz"), `Error: no such pod sandbox "zz"`+"\n")
	if got := len(requests(f, &f.rt.podStatuses)); got != n {
		t.Errorf("status asked for an unresolved ID")
	}
}

func TestResolveFallsBackForExactOnlyRuntimes(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	f.rt.exactIDFilter = true
	r := runCLI(t, ep, "stopp", "bc")
	mustSucceed(t, r)
	if r.stdout != "Stopped sandbox "+podC+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	l := requests(f, &f.rt.listPods)
	if len(l) != 2 || l[0].Filter.GetId() != "bc" || l[1].Filter != nil {
		t.Errorf("list requests %v: want the ID filter, then all", l)
	}
	// A whole ID is found by the first call.
	mustSucceed(t, runCLI(t, ep, "stopp", podA))
	if n := len(requests(f, &f.rt.listPods)); n != 3 {
		t.Errorf("%d list requests, want 3", n)
	}
}

func TestStoppAndRmp(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	// One bad ID does not stop the others.
	r := runCLI(t, ep, "stopp", "aa1", "zz", "bc")
	mustFail(t, r, "Error: no such pod sandbox \"zz\"\nError: unable to stop 1 of 3 pod sandboxes\n")
	if r.stdout != "Stopped sandbox "+podA+"\nStopped sandbox "+podC+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if s := requests(f, &f.rt.stopPods); len(s) != 2 || s[0].PodSandboxId != podA || s[1].PodSandboxId != podC {
		t.Errorf("stop requests %v", s)
	}

	// podB is not ready: removed without -f. A ready pod needs -f.
	f.mu.Lock()
	f.rt.pods[0].State = runtimeapi.PodSandboxState_SANDBOX_READY
	f.mu.Unlock()
	r = runCLI(t, ep, "rmp", "aa1")
	mustFail(t, r, "Error: pod sandbox "+podA+" is ready: stop it first (stopp) or remove it with -f\n")
	if len(requests(f, &f.rt.removePods)) != 0 {
		t.Fatal("removed a ready pod without -f")
	}
	r = runCLI(t, ep, "rmp", "aa2")
	mustSucceed(t, r)
	if r.stdout != "Removed sandbox "+podB+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	stops := len(requests(f, &f.rt.stopPods))
	// With podB gone, "aa" is unique.
	r = runCLI(t, ep, "rmp", "--force", "aa")
	mustSucceed(t, r)
	if r.stdout != "Removed sandbox "+podA+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if s := requests(f, &f.rt.stopPods); len(s) != stops+1 || s[len(s)-1].PodSandboxId != podA {
		t.Errorf("-f did not stop first: %v", s)
	}

	r = runCLI(t, ep, "rmp", "-a", "-f")
	mustSucceed(t, r)
	if r.stdout != "Removed sandbox "+podC+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	r = runCLI(t, ep, "rmp", "-a")
	mustSucceed(t, r)
	if r.stderr != "No pod sandboxes to remove\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	mustFail(t, runCLI(t, ep, "rmp"), `"cradle rmp" needs a POD or --all`)
}
