package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container IDs: ctrA and ctrB share the prefix "c1", ctrC starts with "d4".
var (
	ctrA = "c1aa" + strings.Repeat("0", 60)
	ctrB = "c1bb" + strings.Repeat("0", 60)
	ctrC = "d4cc" + strings.Repeat("0", 60)
)

func fixtureContainers() []*runtimeapi.Container {
	return []*runtimeapi.Container{
		{Id: ctrA, PodSandboxId: podA, Metadata: &runtimeapi.ContainerMetadata{Name: "nginx", Attempt: 1},
			Image: &runtimeapi.ImageSpec{Image: "docker.io/library/nginx:latest"}, ImageRef: "docker.io/library/nginx@" + digest('9'),
			State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: agoNanos(2 * time.Hour), Labels: map[string]string{"tier": "front"}},
		{Id: ctrB, PodSandboxId: podA, Metadata: &runtimeapi.ContainerMetadata{Name: "sidecar"},
			Image: &runtimeapi.ImageSpec{Image: id('b')}, ImageRef: id('b'),
			State: runtimeapi.ContainerState_CONTAINER_EXITED, CreatedAt: agoNanos(time.Hour)},
		{Id: ctrC, PodSandboxId: podB, Metadata: &runtimeapi.ContainerMetadata{Name: "db"},
			Image: &runtimeapi.ImageSpec{Image: "postgres"}, State: runtimeapi.ContainerState_CONTAINER_CREATED,
			CreatedAt: agoNanos(30 * time.Minute)},
	}
}

func TestPsTable(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	r := runCLI(t, ep, "ps")
	mustSucceed(t, r)
	w := []int{20, 33, 20, 20, 20, 20, 20, 20}
	want := row(w, "CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE") +
		row(w, ctrA[:13], "docker.io/library/nginx:latest", "2 hours ago", "Running", "nginx", "1", podA[:13], "web", "default")
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	// Without -a only running containers are asked for.
	lc := requests(f, &f.listContainers)
	wantFilter := &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}
	if len(lc) != 1 || !proto.Equal(lc[0].Filter, wantFilter) {
		t.Errorf("list requests %v", lc)
	}

	// -a: every state, newest first; an image given by ID is cut.
	r = runCLI(t, ep, "ps", "-a")
	mustSucceed(t, r)
	w = []int{20, 33, 20, 20, 20, 20, 20, 20}
	want = row(w, "CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE") +
		row(w, ctrC[:13], "postgres", "30 minutes ago", "Created", "db", "0", podB[:13], "db", "prod") +
		row(w, ctrB[:13], "bbbbbbbbbbbbb", "About an hour ago", "Exited", "sidecar", "0", podA[:13], "web", "default") +
		row(w, ctrA[:13], "docker.io/library/nginx:latest", "2 hours ago", "Running", "nginx", "1", podA[:13], "web", "default")
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, ep, "ps", "-a", "--no-trunc", "--name", "side")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, ctrB+"   "+id('b')+"   ") {
		t.Errorf("--no-trunc:\n%s", r.stdout)
	}
}

func TestPsFilters(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	for _, tc := range []struct {
		args   []string
		want   []string
		filter *runtimeapi.ContainerFilter
	}{
		{[]string{"-a"}, []string{ctrC, ctrB, ctrA}, &runtimeapi.ContainerFilter{}},
		{[]string{"-l"}, []string{ctrC}, &runtimeapi.ContainerFilter{}},
		{[]string{"-n", "2"}, []string{ctrC, ctrB}, &runtimeapi.ContainerFilter{}},
		{[]string{"--state", "Exited"}, []string{ctrB},
			&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_EXITED}}},
		{[]string{"-a", "--pod", "aa1"}, []string{ctrB, ctrA}, &runtimeapi.ContainerFilter{PodSandboxId: podA}},
		{[]string{"-a", "--id", "c1", "--label", "tier=front"}, []string{ctrA},
			&runtimeapi.ContainerFilter{Id: "c1", LabelSelector: map[string]string{"tier": "front"}}},
		{[]string{"-a", "--name", "^(db|nginx)$"}, []string{ctrC, ctrA}, &runtimeapi.ContainerFilter{}},
		// A tag of image b finds the container created with b's ID.
		{[]string{"-a", "--image", "docker.io/library/busybox:1.36"}, []string{ctrB}, &runtimeapi.ContainerFilter{}},
		{[]string{"-a", "--image", "postgres"}, []string{ctrC}, &runtimeapi.ContainerFilter{}},
	} {
		r := runCLI(t, ep, append([]string{"ps", "-q"}, tc.args...)...)
		mustSucceed(t, r)
		if want := strings.Join(tc.want, "\n") + "\n"; r.stdout != want {
			t.Errorf("%v: got %q, want %q", tc.args, r.stdout, want)
		}
		lc := requests(f, &f.listContainers)
		if got := lc[len(lc)-1].Filter; !proto.Equal(got, tc.filter) {
			t.Errorf("%v: filter %v, want %v", tc.args, got, tc.filter)
		}
	}

	r := runCLI(t, ep, "ps", "-o", "yaml", "--id", ctrA)
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "containers:\n- id: "+ctrA+"\n  podSandboxId: "+podA+"\n") {
		t.Errorf("yaml:\n%s", r.stdout)
	}

	n := len(requests(f, &f.listContainers))
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"ps", "--state", "stopped"}, `--state "stopped": want created, running, exited or unknown`},
		{[]string{"ps", "--pod", "zz"}, `no such pod sandbox "zz"`},
		{[]string{"ps", "--pod", "aa"}, `pod sandbox ID prefix "aa" is ambiguous`},
		{[]string{"ps", "-l", "--last", "1"}, "--latest and --last exclude each other"},
		{[]string{"ps", "--last", "-1"}, "--last must not be negative"},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.msg)
	}
	if got := len(requests(f, &f.listContainers)); got != n {
		t.Errorf("bad flags still listed containers")
	}
}

const ctrJSON = `{"metadata": {"name": "busybox"}, "image": {"image": "busybox"}, "command": ["top"], "log_path": "busybox.0.log"}`

func wantCtr(image string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "busybox"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  []string{"top"},
		LogPath:  "busybox.0.log",
	}
}

func TestCreatePullsMissingImage(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	ctr, pod := writeFile(t, "ctr.json", ctrJSON), writeFile(t, "pod.json", podJSON)
	r := runCLI(t, ep, "create", "bc", ctr, pod)
	mustSucceed(t, r)
	if r.stdout != "newctr\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	cr := requests(f, &f.rt.creates)
	want := &runtimeapi.CreateContainerRequest{PodSandboxId: podC, Config: wantCtr("busybox"), SandboxConfig: wantPod()}
	if len(cr) != 1 || !proto.Equal(cr[0], want) {
		t.Errorf("create requests %v\nwant %v", cr, want)
	}
	// "busybox" is not known to the fake: asked for, then pulled with the pod config.
	st, pulls := requests(f, &f.imageStatuses), requests(f, &f.pulls)
	if len(st) != 1 || st[0].Image.Image != "busybox" {
		t.Errorf("image status requests %v", st)
	}
	wantPull := &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox"}, SandboxConfig: wantPod()}
	if len(pulls) != 1 || !proto.Equal(pulls[0], wantPull) {
		t.Errorf("pulls %v, want %v", pulls, wantPull)
	}
}

func TestCreatePullModes(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	present := writeFile(t, "ctr.yaml", `metadata: {name: busybox}
image: {image: "docker.io/library/busybox:latest"}
command: [top]
log_path: busybox.0.log
`)
	pod := writeFile(t, "pod.json", podJSON)
	mustSucceed(t, runCLI(t, ep, "create", podA, present, pod))
	if n := len(requests(f, &f.pulls)); n != 0 {
		t.Errorf("pulled a present image (%d pulls)", n)
	}
	if cr := requests(f, &f.rt.creates); len(cr) != 1 || !proto.Equal(cr[0].Config, wantCtr("docker.io/library/busybox:latest")) {
		t.Errorf("create from YAML %v", cr)
	}

	missing := writeFile(t, "ctr.json", ctrJSON)
	mustSucceed(t, runCLI(t, ep, "create", "--no-pull", podA, missing, pod))
	if len(requests(f, &f.imageStatuses)) != 1 || len(requests(f, &f.pulls)) != 0 {
		t.Errorf("--no-pull looked at the image")
	}
	mustSucceed(t, runCLI(t, ep, "create", "--with-pull", "--creds", "u:p", podA, present, pod))
	pulls := requests(f, &f.pulls)
	if len(requests(f, &f.imageStatuses)) != 1 || len(pulls) != 1 || !proto.Equal(pulls[0].Auth, &runtimeapi.AuthConfig{Username: "u", Password: "p"}) {
		t.Errorf("--with-pull: pulls %v", pulls)
	}

	creates := len(requests(f, &f.rt.creates))
	noImage := writeFile(t, "bad.json", `{"metadata": {"name": "x"}}`)
	noName := writeFile(t, "noname.yaml", "image: {image: busybox}\n")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"create", podA, noImage, pod}, "image.image is not set"},
		{[]string{"create", podA, noName, pod}, "metadata.name is not set"},
		{[]string{"create", podA, pod, pod}, `json: unknown field "namespace"`},
		{[]string{"create", "--no-pull", "--with-pull", podA, missing, pod}, "--no-pull and --with-pull exclude each other"},
		{[]string{"create", "zz", missing, pod}, `no such pod sandbox "zz"`},
		{[]string{"create", podA, missing}, "needs POD, CONTAINER_CONFIG and POD_CONFIG"},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.msg)
	}
	if got := len(requests(f, &f.rt.creates)); got != creates {
		t.Errorf("bad input still created")
	}

	f.mu.Lock()
	f.rt.createErr = status.Error(codes.AlreadyExists, `container name "busybox" is in use`)
	f.mu.Unlock()
	mustFail(t, runCLI(t, ep, "create", "--no-pull", podA, missing, pod), `Error: create container busybox: container name "busybox" is in use`+"\n")
}

func TestRun(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	ctr, pod := writeFile(t, "ctr.json", ctrJSON), writeFile(t, "pod.json", podJSON)
	r := runCLI(t, ep, "run", "-r", "kata", "--no-pull", ctr, pod)
	mustSucceed(t, r)
	if r.stdout != "newctr\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	runs, cr, starts := requests(f, &f.rt.runPods), requests(f, &f.rt.creates), requests(f, &f.rt.starts)
	if len(runs) != 1 || runs[0].RuntimeHandler != "kata" || !proto.Equal(runs[0].Config, wantPod()) {
		t.Errorf("runp %v", runs)
	}
	if len(cr) != 1 || !proto.Equal(cr[0], &runtimeapi.CreateContainerRequest{PodSandboxId: "newpod", Config: wantCtr("busybox"), SandboxConfig: wantPod()}) {
		t.Errorf("create %v", cr)
	}
	if len(starts) != 1 || starts[0].ContainerId != "newctr" {
		t.Errorf("start %v", starts)
	}

	// A failed start leaves no pod behind.
	f.mu.Lock()
	f.rt.startErr = status.Error(codes.Unknown, "runc: exec format error")
	f.mu.Unlock()
	r = runCLI(t, ep, "run", "--no-pull", ctr, pod)
	mustFail(t, r, "Error: start container newctr: runc: exec format error\n")
	if s, rm := requests(f, &f.rt.stopPods), requests(f, &f.rt.removePods); len(s) != 1 || s[0].PodSandboxId != "newpod" || len(rm) != 1 || rm[0].PodSandboxId != "newpod" {
		t.Errorf("cleanup: stops %v removes %v", s, rm)
	}
	// A failed cleanup is reported with the cause.
	f.mu.Lock()
	f.rt.stopPodErr = status.Error(codes.Internal, "netns busy")
	f.mu.Unlock()
	r = runCLI(t, ep, "run", "--no-pull", ctr, pod)
	mustFail(t, r, "Error: start container newctr: runc: exec format error\npod sandbox newpod is left behind: stop: netns busy\n")
}

func TestStartStopRm(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	r := runCLI(t, ep, "start", "d4")
	mustSucceed(t, r)
	if r.stdout != ctrC+"\n" {
		t.Errorf("start stdout %q", r.stdout)
	}
	if s := requests(f, &f.rt.starts); len(s) != 1 || s[0].ContainerId != ctrC {
		t.Errorf("starts %v", s)
	}
	mustFail(t, runCLI(t, ep, "start", "c1"), `container ID prefix "c1" is ambiguous: it matches `+ctrA+", "+ctrB)

	r = runCLI(t, ep, "stop", "-t", "10", "c1a", ctrC)
	mustSucceed(t, r)
	if r.stdout != ctrA+"\n"+ctrC+"\n" {
		t.Errorf("stop stdout %q", r.stdout)
	}
	stops := requests(f, &f.rt.stopCtrs)
	if len(stops) != 2 || !proto.Equal(stops[0], &runtimeapi.StopContainerRequest{ContainerId: ctrA, Timeout: 10}) {
		t.Errorf("stops %v", stops)
	}
	mustFail(t, runCLI(t, ep, "stop", "--timeout", "-1", ctrA), "--timeout must not be negative")

	// rm: a running container needs -f, which stops it without grace.
	f.setContainerState(ctrA, runtimeapi.ContainerState_CONTAINER_RUNNING)
	mustFail(t, runCLI(t, ep, "rm", ctrA), "Error: container "+ctrA+" is running: stop it first or remove it with -f\n")
	if len(requests(f, &f.rt.removeCtrs)) != 0 {
		t.Fatal("removed a running container")
	}
	r = runCLI(t, ep, "rm", "-f", "c1a")
	mustSucceed(t, r)
	stops = requests(f, &f.rt.stopCtrs)
	if last := stops[len(stops)-1]; r.stdout != ctrA+"\n" || !proto.Equal(last, &runtimeapi.StopContainerRequest{ContainerId: ctrA}) {
		t.Errorf("rm -f: stdout %q, last stop %v", r.stdout, last)
	}
	r = runCLI(t, ep, "rm", "-a")
	mustSucceed(t, r)
	if r.stdout != ctrB+"\n"+ctrC+"\n" {
		t.Errorf("rm -a stdout %q", r.stdout)
	}
	r = runCLI(t, ep, "rm", "--all")
	mustSucceed(t, r)
	if r.stderr != "No containers to remove\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	mustFail(t, runCLI(t, ep, "rm"), `"cradle rm" needs a CONTAINER or --all`)
	mustFail(t, runCLI(t, ep, "start", "gone"), `Error: no such container "gone"`+"\n")
}

func TestInspect(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	r := runCLI(t, ep, "inspect", "c1b")
	mustSucceed(t, r)
	var doc struct {
		Status struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"status"`
		Info struct {
			Pid int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Status.ID != ctrB || doc.Status.State != "CONTAINER_EXITED" || doc.Info.Pid != 7 {
		t.Errorf("document %+v (%v):\n%s", doc, err, r.stdout)
	}
	st := requests(f, &f.rt.ctrStatuses)
	if len(st) != 1 || !proto.Equal(st[0], &runtimeapi.ContainerStatusRequest{ContainerId: ctrB, Verbose: true}) {
		t.Errorf("status requests %v", st)
	}
	r = runCLI(t, ep, "inspect", "-o", "go-template", "--template", "{{.status.metadata.name}}", "d4")
	mustSucceed(t, r)
	if r.stdout != "db\n" {
		t.Errorf("template output %q", r.stdout)
	}
	mustFail(t, runCLI(t, ep, "inspect", "-o", "table", "d4"), `unsupported output format "table"`)
}

func TestExec(t *testing.T) {
	t.Parallel()
	f, ep := newRuntimeFake(t)
	f.mu.Lock()
	f.rt.execStdout, f.rt.execStderr = "out\n", "warn\n"
	f.mu.Unlock()
	// Flags after the container belong to the command.
	r := runCLI(t, ep, "exec", "--timeout", "5", "c1a", "ls", "-l", "/")
	mustSucceed(t, r)
	if r.stdout != "out\n" || r.stderr != "warn\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	ex := requests(f, &f.rt.execs)
	want := &runtimeapi.ExecSyncRequest{ContainerId: ctrA, Cmd: []string{"ls", "-l", "/"}, Timeout: 5}
	if len(ex) != 1 || !proto.Equal(ex[0], want) {
		t.Errorf("exec requests %v, want %v", ex, want)
	}

	mustSucceed(t, runCLI(t, ep, "exec", "c1a", "--", "ls", "-l"))
	if ex := requests(f, &f.rt.execs); len(ex) != 2 || !slices.Equal(ex[1].Cmd, []string{"ls", "-l"}) {
		t.Errorf("exec after -- sent %v", ex[len(ex)-1].Cmd)
	}
	mustFail(t, runCLI(t, ep, "exec", "c1a", "--"), "needs a COMMAND after --")

	// The command's exit code is cradle's, with its output and no message.
	f.mu.Lock()
	f.rt.execCode = 3
	f.mu.Unlock()
	r = runCLI(t, ep, "exec", ctrA, "false")
	if r.code != 3 || r.stdout != "out\n" || r.stderr != "warn\n" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if ex := requests(f, &f.rt.execs); ex[2].Timeout != 0 {
		t.Errorf("default timeout %d, want 0 (none)", ex[2].Timeout)
	}

	n := len(requests(f, &f.rt.execs))
	mustFail(t, runCLI(t, ep, "exec", "-it", ctrA, "sh"), "stdin is not a terminal")
	mustFail(t, runCLI(t, ep, "exec", "nope", "sh"), `Error: no such container "nope"`+"\n")
	mustFail(t, runCLI(t, ep, "exec", ctrA), "needs a CONTAINER and a COMMAND")
	if got := len(requests(f, &f.rt.execs)); got != n {
		t.Errorf("bad exec still called ExecSync")
	}

	f.mu.Lock()
	f.rt.execErr = status.Error(codes.FailedPrecondition, "container is not running")
	f.mu.Unlock()
	mustFail(t, runCLI(t, ep, "exec", ctrB, "true"), "Error: exec in container "+ctrB+": container is not running\n")
}
