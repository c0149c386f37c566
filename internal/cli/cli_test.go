package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func id(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// fixtureImages covers the table's cases: two tags on one image, a pinned
// image, an image pulled by digest (no tag), a registry with a port.
func fixtureImages() []*runtimeapi.Image {
	return []*runtimeapi.Image{
		{Id: id('a'), RepoTags: []string{"registry.k8s.io/pause:3.10"}, RepoDigests: []string{"registry.k8s.io/pause@" + digest('1')}, Size: 742000, Pinned: true},
		{Id: id('d'), RepoTags: []string{"localhost:5000/tool:v2"}, Size: 999500, Uid: &runtimeapi.Int64Value{Value: 0}, Username: "tool"},
		{Id: id('b'), RepoTags: []string{"docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"}, RepoDigests: []string{"docker.io/library/busybox@" + digest('2')}, Size: 4261550},
		{Id: id('c'), RepoDigests: []string{"localhost:5000/app@" + digest('3')}, Size: 1150000},
	}
}

func newFake(t *testing.T) (*fakeCRI, string) {
	f := &fakeCRI{images: fixtureImages(), pullRef: "docker.io/library/busybox@" + digest('2')}
	return f, serveFake(t, f, true, true)
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
	}
}

func mustFail(t *testing.T, r result, stderr string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stdout: %s stderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, stderr) {
		t.Fatalf("stderr %q does not contain %q", r.stderr, stderr)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	r := runCLI(t, ep, "version")
	mustSucceed(t, r)
	want := "Version:  0.1.0\nRuntimeName:  fake\nRuntimeVersion:  9.9.9\nRuntimeApiVersion:  v1\n"
	if r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
	// The connection check and the verb itself both ask for CRI v1.
	vs := requests(f, &f.versions)
	if len(vs) == 0 || vs[len(vs)-1].Version != "v1" {
		t.Errorf("version requests %v", vs)
	}
}

func TestInfo(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.info = map[string]string{"config": `{"root":"/var/lib/fake","handlers":["runc"]}`, "golang": `"go1.26"`, "note": "plain text"}

	r := runCLI(t, ep, "info")
	mustSucceed(t, r)
	if st := requests(f, &f.statuses); len(st) != 1 || !st[0].Verbose {
		t.Fatalf("status requests %v, want one verbose", st)
	}
	var doc struct {
		Status struct {
			Conditions []struct {
				Type    string `json:"type"`
				Status  bool   `json:"status"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
		RuntimeHandlers []struct {
			Name     string          `json:"name"`
			Features map[string]bool `json:"features"`
		} `json:"runtimeHandlers"`
		Features map[string]bool `json:"features"`
		Config   struct {
			Root string `json:"root"`
		} `json:"config"`
		Golang string `json:"golang"`
		Note   string `json:"note"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	c := doc.Status.Conditions
	if len(c) != 2 || c[0].Type != "RuntimeReady" || !c[0].Status || c[1].Reason != "NoCNI" || c[1].Status {
		t.Errorf("conditions %+v", c)
	}
	if len(doc.RuntimeHandlers) != 1 || doc.RuntimeHandlers[0].Name != "runc" || !doc.RuntimeHandlers[0].Features["userNamespaces"] {
		t.Errorf("runtime handlers %+v", doc.RuntimeHandlers)
	}
	if !doc.Features["supplementalGroupsPolicy"] {
		t.Errorf("features %v", doc.Features)
	}
	if doc.Config.Root != "/var/lib/fake" || doc.Golang != "go1.26" || doc.Note != "plain text" {
		t.Errorf("info not embedded: %+v", doc)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"status\": {") {
		t.Errorf("status is not first:\n%s", r.stdout)
	}

	// -q: no verbose request, no info keys; YAML output.
	r = runCLI(t, ep, "info", "-q", "-o", "yaml")
	mustSucceed(t, r)
	if st := requests(f, &f.statuses); len(st) != 2 || st[1].Verbose {
		t.Errorf("quiet status request %v", st[1])
	}
	if !strings.HasPrefix(r.stdout, "status:\n  conditions:\n  - type: RuntimeReady\n    status: true\n    reason: \"\"\n    message: \"\"\n") {
		t.Errorf("yaml:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "golang") || strings.Contains(r.stdout, "/var/lib/fake") {
		t.Errorf("quiet output has verbose info:\n%s", r.stdout)
	}

	r = runCLI(t, ep, "info", "-o", "go-template", "--template", "{{range .status.conditions}}{{.type}}={{.status}} {{end}}")
	mustSucceed(t, r)
	if r.stdout != "RuntimeReady=true NetworkReady=false \n" {
		t.Errorf("template output %q", r.stdout)
	}
}

func TestPullSendsAuthSandboxAndAnnotations(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	pod := writeFile(t, "pod.json", podJSON)
	r := runCLI(t, ep, "pull", "--creds", "alice:pw", "--pod-config", pod, "-a", "io.example/a=1", "--annotation", "b=x=y", "busybox")
	mustSucceed(t, r)
	if want := "Image is up to date for docker.io/library/busybox@" + digest('2') + "\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	pulls := requests(f, &f.pulls)
	if len(pulls) != 1 {
		t.Fatalf("%d pull requests", len(pulls))
	}
	want := &runtimeapi.PullImageRequest{
		Image:         &runtimeapi.ImageSpec{Image: "busybox", Annotations: map[string]string{"io.example/a": "1", "b": "x=y"}},
		Auth:          &runtimeapi.AuthConfig{Username: "alice", Password: "pw"},
		SandboxConfig: wantPod(),
	}
	if !proto.Equal(pulls[0], want) {
		t.Errorf("request\n%v\nwant\n%v", pulls[0], want)
	}
}

func TestPullAuthForms(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	b64 := base64.StdEncoding.EncodeToString([]byte("bob:pw2"))
	mustSucceed(t, runCLI(t, ep, "pull", "--auth", b64, "app:1"))

	env, _, _ := testEnv()
	env.stdin = strings.NewReader("from-stdin\n")
	mustSucceed(t, runCLIEnv(t, env, ep, "pull", "-u", "carol", "--password-stdin", "app:2"))

	mustSucceed(t, runCLI(t, ep, "pull", "app:3"))

	pulls := requests(f, &f.pulls)
	if len(pulls) != 3 {
		t.Fatalf("%d pulls", len(pulls))
	}
	for i, want := range []*runtimeapi.AuthConfig{{Auth: b64}, {Username: "carol", Password: "from-stdin"}, nil} {
		if !proto.Equal(pulls[i].Auth, want) {
			t.Errorf("pull %d auth %v, want %v", i, pulls[i].Auth, want)
		}
		if pulls[i].SandboxConfig != nil {
			t.Errorf("pull %d sent a sandbox config", i)
		}
	}
}

func TestPullRefusesBadInputBeforeCalling(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	bad := writeFile(t, "pod.yaml", "metadata: {name: a}\n")
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"pull", "--creds", "a:b", "--auth", "YTpi", "x"}, "exclude each other"},
		{[]string{"pull", "--auth", "not base64!", "x"}, "not base64"},
		{[]string{"pull", "-u", "bob", "x"}, "no terminal to ask for the password"},
		{[]string{"pull", "--pod-config", bad, "x"}, "name and a namespace"},
		{[]string{"pull", "--pod-config", filepath.Join(t.TempDir(), "nope.json"), "x"}, "not found"},
		{[]string{"pull", "-a", "novalue", "x"}, "want KEY=VALUE"},
		{[]string{"pull", "--pull-timeout", "-1s", "x"}, "must not be negative"},
		{[]string{"pull", " "}, "image name is empty"},
		{[]string{"pull"}, "needs an IMAGE"},
		{[]string{"pull", "a", "b"}, "needs an IMAGE, got 2"},
	} {
		mustFail(t, runCLI(t, ep, tc.args...), tc.msg)
	}
	if n := len(requests(f, &f.pulls)); n != 0 {
		t.Errorf("%d pulls sent for bad input", n)
	}
}

func TestPullErrorIsTheRuntimesMessage(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.pullErr = status.Error(codes.NotFound, "docker.io/library/nope:latest: manifest unknown")
	r := runCLI(t, ep, "pull", "nope")
	mustFail(t, r, "Error: pull nope: docker.io/library/nope:latest: manifest unknown\n")
	if strings.Contains(r.stderr, "rpc error") || r.stdout != "" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestPullTimeout(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.pullGate = make(chan struct{}) // never opens
	r := runCLI(t, ep, "pull", "--pull-timeout", "200ms", "slow")
	mustFail(t, r, "pull slow: not done after --pull-timeout 200ms")
}

// On a terminal the pull shows a live spinner while the runtime works, then
// erases it and prints the result.
func TestPullProgressOnTerminal(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	gate := make(chan struct{})
	f.pullGate = gate
	env, out, _ := testEnv()
	env.isTerminal = func(any) bool { return true }
	done := make(chan result, 1)
	go func() { done <- runCLIEnv(t, env, ep, "pull", "busybox") }()

	// Two different frames prove it is redrawn while the pull is blocked.
	waitFor(t, func() bool {
		s := out.String()
		return strings.Contains(s, spinnerFrames[0]+" Pulling busybox (") && strings.Contains(s, spinnerFrames[1]+" Pulling busybox (")
	})
	if strings.Contains(out.String(), "up to date") {
		t.Fatal("result printed before the pull finished")
	}
	close(gate)
	r := <-done
	mustSucceed(t, r)
	if !strings.HasSuffix(r.stdout, "\r\033[KImage is up to date for docker.io/library/busybox@"+digest('2')+"\n") {
		t.Errorf("the spinner line is not erased before the result: %q", r.stdout)
	}
}

func TestPullWithoutTerminalPrintsOnlyTheResult(t *testing.T) {
	t.Parallel()
	_, ep := newFake(t)
	r := runCLI(t, ep, "pull", "busybox")
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "\r") || strings.Contains(r.stdout, "Pulling") {
		t.Errorf("progress written to a non-terminal: %q", r.stdout)
	}
}

func imagesRow(image, tag, imageID, size string) string {
	return fmt.Sprintf("%-28s%-20s%-20s%s\n", image, tag, imageID, size)
}

func TestImagesTable(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	r := runCLI(t, ep, "images")
	mustSucceed(t, r)
	// Sorted by first tag (else digest); one row per tag; the untagged
	// image is named after its digest's repository; a registry port is not
	// a tag; sizes in 1000-based units.
	want := imagesRow("IMAGE", "TAG", "IMAGE ID", "SIZE") +
		imagesRow("docker.io/library/busybox", "latest", "bbbbbbbbbbbbb", "4.26MB") +
		imagesRow("docker.io/library/busybox", "1.36", "bbbbbbbbbbbbb", "4.26MB") +
		imagesRow("localhost:5000/app", "<none>", "ccccccccccccc", "1.15MB") +
		imagesRow("localhost:5000/tool", "v2", "ddddddddddddd", "1MB") +
		imagesRow("registry.k8s.io/pause", "3.10", "aaaaaaaaaaaaa", "742kB")
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	if l := requests(f, &f.lists); len(l) != 1 || l[0].Filter != nil {
		t.Errorf("list requests %v, want one without filter", l)
	}
}

func TestImagesColumnsAndModes(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)

	r := runCLI(t, ep, "images", "--digests", "--no-trunc", "--pinned", "registry.k8s.io/pause:3.10")
	mustSucceed(t, r)
	want := fmt.Sprintf("%-24s%-20s%-74s%-74s%-20s%s\n", "IMAGE", "TAG", "DIGEST", "IMAGE ID", "SIZE", "PINNED") +
		fmt.Sprintf("%-24s%-20s%-74s%-74s%-20s%s\n", "registry.k8s.io/pause", "3.10", digest('1'), id('a'), "742kB", "true")
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	l := requests(f, &f.lists)
	if len(l) != 1 || l[0].GetFilter().GetImage().GetImage() != "registry.k8s.io/pause:3.10" {
		t.Errorf("filter not sent: %v", l)
	}

	r = runCLI(t, ep, "img", "-q")
	mustSucceed(t, r)
	if want := strings.Join([]string{id('b'), id('c'), id('d'), id('a')}, "\n") + "\n"; r.stdout != want {
		t.Errorf("quiet:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, ep, "image", "-v", "localhost:5000/tool:v2")
	mustSucceed(t, r)
	if want := "ID: " + id('d') + "\nRepoTags: localhost:5000/tool:v2\nSize: 999500\nUid: 0\nUsername: tool\n\n"; r.stdout != want {
		t.Errorf("verbose:\n%q\nwant:\n%q", r.stdout, want)
	}
}

func TestImagesJSONAndYAML(t *testing.T) {
	t.Parallel()
	_, ep := newFake(t)
	r := runCLI(t, ep, "images", "-o", "json")
	mustSucceed(t, r)
	var resp struct {
		Images []struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
			Size     string   `json:"size"`
			Pinned   bool     `json:"pinned"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(resp.Images) != 4 || resp.Images[0].ID != id('b') || resp.Images[0].Size != "4261550" || !resp.Images[3].Pinned {
		t.Errorf("json images %+v", resp.Images)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"images\": [\n    {\n      \"id\": \"sha256:bbbb") {
		t.Errorf("not indented like crictl:\n%s", r.stdout)
	}

	r = runCLI(t, ep, "images", "-o", "yaml", "docker.io/library/busybox:latest")
	mustSucceed(t, r)
	want := "images:\n- id: " + id('b') + "\n  repoTags:\n  - docker.io/library/busybox:latest\n  - docker.io/library/busybox:1.36\n" +
		"  repoDigests:\n  - docker.io/library/busybox@" + digest('2') + "\n  size: \"4261550\"\n  username: \"\"\n  pinned: false\n"
	if r.stdout != want {
		t.Errorf("yaml:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestImagesBadFormatCallsNothing(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	mustFail(t, runCLI(t, ep, "images", "-o", "xml"), `unsupported output format "xml"`)
	mustFail(t, runCLI(t, ep, "images", "a", "b"), "at most 1 argument")
	if l := requests(f, &f.lists); len(l) != 0 {
		t.Errorf("listed images for a bad command line: %v", l)
	}
}

func TestInspecti(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	r := runCLI(t, ep, "inspecti", "docker.io/library/busybox:latest")
	mustSucceed(t, r)
	var doc struct {
		Status struct {
			ID          string   `json:"id"`
			RepoDigests []string `json:"repoDigests"`
			Size        string   `json:"size"`
		} `json:"status"`
		Info struct {
			ChainIDs []string `json:"chainIDs"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if doc.Status.ID != id('b') || doc.Status.Size != "4261550" || len(doc.Info.ChainIDs) != 1 {
		t.Errorf("inspecti %+v", doc)
	}
	st := requests(f, &f.imageStatuses)
	if len(st) != 1 || !st[0].Verbose || st[0].Image.Image != "docker.io/library/busybox:latest" {
		t.Errorf("status requests %v", st)
	}

	// Several images: an array; -q: not verbose.
	r = runCLI(t, ep, "inspecti", "-q", id('a'), "localhost:5000/app@"+digest('3'))
	mustSucceed(t, r)
	var docs []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &docs); err != nil || len(docs) != 2 {
		t.Fatalf("want an array of two: %v\n%s", err, r.stdout)
	}
	if _, ok := docs[0]["info"]; ok {
		t.Error("quiet inspecti has info")
	}
	if st := requests(f, &f.imageStatuses); st[1].Verbose {
		t.Error("quiet inspecti asked for verbose status")
	}

	r = runCLI(t, ep, "inspecti", "-o", "go-template", "--template", "{{.status.id}} {{index .status.repoTags 0}}", "docker.io/library/busybox:1.36")
	mustSucceed(t, r)
	if r.stdout != id('b')+" docker.io/library/busybox:latest\n" {
		t.Errorf("template %q", r.stdout)
	}

	r = runCLI(t, ep, "inspecti", "-o", "yaml", "-q", id('c'))
	mustSucceed(t, r)
	if want := "status:\n  id: " + id('c') + "\n  repoTags: []\n  repoDigests:\n  - localhost:5000/app@" + digest('3') + "\n  size: \"1150000\"\n  username: \"\"\n  pinned: false\n"; r.stdout != want {
		t.Errorf("yaml:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = runCLI(t, ep, "inspecti", "-o", "table", "docker.io/library/busybox:latest")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "ID: "+id('b')+"\nTag: docker.io/library/busybox:latest\nTag: docker.io/library/busybox:1.36\nDigest: docker.io/library/busybox@"+digest('2')+"\nSize: 4.26MB\nInfo: {\"info\":{\"chainIDs\"") {
		t.Errorf("table:\n%s", r.stdout)
	}
}

func TestInspectiMissingImage(t *testing.T) {
	t.Parallel()
	_, ep := newFake(t)
	r := runCLI(t, ep, "inspecti", "docker.io/library/busybox:latest", "ghost:1")
	mustFail(t, r, `Error: no such image "ghost:1"`)
	if r.stdout != "" {
		t.Errorf("printed a partial result: %s", r.stdout)
	}
	mustFail(t, runCLI(t, ep, "inspecti"), "needs at least one IMAGE")
}

func TestRmiByName(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	// Two names of one image remove it once, by its ID.
	r := runCLI(t, ep, "rmi", "docker.io/library/busybox:1.36", id('b'))
	mustSucceed(t, r)
	if r.stdout != "Deleted: docker.io/library/busybox:latest\nDeleted: docker.io/library/busybox:1.36\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	rm := requests(f, &f.removes)
	if len(rm) != 1 || rm[0].Image.Image != id('b') {
		t.Errorf("remove requests %v", rm)
	}

	// Untagged: named by digest. A missing name fails the run but does not
	// stop the others.
	r = runCLI(t, ep, "rmi", "ghost", "localhost:5000/app@"+digest('3'))
	mustFail(t, r, `Error: no such image "ghost"`)
	if !strings.Contains(r.stderr, "Error: unable to remove the image(s)") {
		t.Errorf("stderr %q", r.stderr)
	}
	if r.stdout != "Deleted: localhost:5000/app@"+digest('3')+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	mustFail(t, runCLI(t, ep, "rmi"), "needs an IMAGE, --all or --prune")
}

func TestRmiPruneKeepsUsedAndPinned(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.containers = []*runtimeapi.Container{
		// A runtime filling image_id.
		{Id: "c1", ImageId: id('b'), Image: &runtimeapi.ImageSpec{Image: "busybox"}},
		// One that does not: resolved through ImageStatus of image_ref.
		{Id: "c2", ImageRef: "localhost:5000/tool:v2", State: runtimeapi.ContainerState_CONTAINER_EXITED},
	}
	r := runCLI(t, ep, "rmi", "--prune")
	mustSucceed(t, r)
	// Left: busybox (c1), tool (c2, exited), pause (pinned). Removed: app.
	if r.stdout != "Deleted: localhost:5000/app@"+digest('3')+"\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	rm := requests(f, &f.removes)
	if len(rm) != 1 || rm[0].Image.Image != id('c') {
		t.Errorf("removed %v", rm)
	}
	if lc := requests(f, &f.listContainers); len(lc) != 1 || lc[0].Filter != nil {
		t.Errorf("containers listed with %v, want every container", lc)
	}

	// Nothing left to prune.
	r = runCLI(t, ep, "rmi", "-q")
	mustSucceed(t, r)
	if r.stdout != "" || r.stderr != "No images to remove\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestRmiAllReportsFailures(t *testing.T) {
	t.Parallel()
	f, ep := newFake(t)
	f.images = append(f.images, &runtimeapi.Image{Id: "sha256:busy", RepoTags: []string{"zz/busy:1"}, Size: 1})
	r := runCLI(t, ep, "rmi", "-a")
	mustFail(t, r, "remove image sha256:busy: image is in use by a sandbox")
	for _, name := range []string{"docker.io/library/busybox:latest", "registry.k8s.io/pause:3.10", "localhost:5000/tool:v2", "localhost:5000/app@"} {
		if !strings.Contains(r.stdout, "Deleted: "+name) {
			t.Errorf("%s not deleted: %s", name, r.stdout)
		}
	}
	if n := len(requests(f, &f.removes)); n != 5 {
		t.Errorf("%d remove requests, want 5", n)
	}
}

func TestImageFsInfo(t *testing.T) {
	t.Parallel()
	_, ep := newFake(t)
	r := runCLI(t, ep, "imagefsinfo")
	mustSucceed(t, r)
	want := `{
  "status": {
    "imageFilesystems": [
      {
        "timestamp": "1700000000000000000",
        "fsId": {
          "mountpoint": "/var/lib/fake"
        },
        "usedBytes": {
          "value": "4261550"
        },
        "inodesUsed": {
          "value": "42"
        }
      }
    ],
    "containerFilesystems": []
  }
}
`
	if r.stdout != want {
		t.Errorf("got:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = runCLI(t, ep, "imagefsinfo", "-o", "yaml")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "    usedBytes:\n      value: \"4261550\"\n") {
		t.Errorf("yaml:\n%s", r.stdout)
	}
	r = runCLI(t, ep, "imagefsinfo", "-o", "table")
	mustSucceed(t, r)
	if want := fmt.Sprintf("%-20s%-20s%-20s%-20s%s\n", "FILESYSTEM", "MOUNTPOINT", "USED", "INODES", "TIMESTAMP") +
		fmt.Sprintf("%-20s%-20s%-20s%-20s%s\n", "image", "/var/lib/fake", "4.262MB", "42", "1700000000000000000"); r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := "unix://" + filepath.Join(dir, "missing.sock")
	mustFail(t, runCLI(t, missing, "images"), "Error: cannot connect to the runtime at "+missing+": is a CRI runtime listening there?\n")

	// A socket file nobody listens on.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	mustFail(t, runCLI(t, "unix://"+stale, "version"), "cannot connect to the runtime at unix://"+stale+": is a CRI runtime listening there?")

	mustFail(t, runCLI(t, "tcp://127.0.0.1:1", "images"), `scheme "tcp" is not supported`)
	mustFail(t, runCLI(t, "", "-t", "0s", "-r", missing, "images"), "--timeout must be positive")
}

// The hint names `cradle daemon` only for cradle's own socket. Not parallel:
// it changes the package's default endpoint.
func TestConnectErrorDefaultEndpointHint(t *testing.T) {
	saved := defaultEndpoint
	defaultEndpoint = "unix://" + filepath.Join(t.TempDir(), "cradle.sock")
	defer func() { defaultEndpoint = saved }()
	r := runCLI(t, "", "version")
	mustFail(t, r, "Error: cannot connect to the runtime at "+defaultEndpoint+": is `cradle daemon` running?\n")
}

// Each service is dialled on its own endpoint and only when needed, so an
// image-only endpoint serves the image verbs.
func TestImageOnlyEndpoint(t *testing.T) {
	t.Parallel()
	f := &fakeCRI{images: fixtureImages()}
	imgOnly := serveFake(t, f, true, false)
	missing := "unix://" + filepath.Join(t.TempDir(), "missing.sock")

	r := runCLI(t, "", "-r", missing, "-i", imgOnly, "images", "-q")
	mustSucceed(t, r)
	if strings.Count(r.stdout, "sha256:") != 4 {
		t.Errorf("stdout %q", r.stdout)
	}
	mustFail(t, runCLI(t, imgOnly, "version"), "cannot connect to the runtime at "+imgOnly+": it does not serve the CRI v1 runtime service")

	// The environment variables select the endpoints too.
	env, _, _ := testEnv()
	env.getenv = func(k string) string {
		return map[string]string{envRuntimeEndpoint: missing, envImageEndpoint: imgOnly}[k]
	}
	mustSucceed(t, runCLIEnv(t, env, "", "images"))
}

func TestGlobalFlagAfterVerbIsExplained(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", "images", "-r", "/x.sock")
	mustFail(t, r, "global flags go before the verb")
	if !strings.Contains(r.stderr, "Run 'cradle images --help' for usage.") {
		t.Errorf("stderr %q", r.stderr)
	}
	r = runCLI(t, "", "images", "--debug")
	mustFail(t, r, "global flags go before the verb")
	// A verb's own unknown flag gets no such hint.
	r = runCLI(t, "", "images", "--bogus")
	mustFail(t, r, "unknown flag: --bogus")
	if strings.Contains(r.stderr, "global flags") {
		t.Errorf("misleading hint: %q", r.stderr)
	}
}

func TestUnknownVerb(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", "imagez")
	mustFail(t, r, `unknown command "imagez" for "cradle"`)
	if !strings.Contains(r.stderr, "images") {
		t.Errorf("no suggestion: %q", r.stderr)
	}
	// No verb at all: the help, successfully.
	r = runCLI(t, "")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestDebugLogsToStderr(t *testing.T) {
	t.Parallel()
	_, ep := newFake(t)
	r := runCLI(t, "", "-D", "-r", ep, "images", "-q")
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "connecting to the image service") || !strings.Contains(r.stderr, ep) {
		t.Errorf("no debug log: %q", r.stderr)
	}
	if strings.Contains(r.stdout, "level=") {
		t.Error("debug log on stdout")
	}
	// Without -D a failing call prints only the CLI's own line, not the
	// client library's log.
	r = runCLI(t, ep, "inspecti", "ghost")
	if strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("extra stderr lines: %q", r.stderr)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "", "--help")
	mustSucceed(t, r)
	for _, verb := range []string{"daemon", "config", "check", "version", "info", "pull", "images", "inspecti", "rmi", "imagefsinfo", "--runtime-endpoint"} {
		if !strings.Contains(r.stdout, verb) {
			t.Errorf("root help lacks %q", verb)
		}
	}
	r = runCLI(t, "", "images", "--help")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "--no-trunc") || !strings.Contains(r.stdout, "Global flags (before the verb)") {
		t.Errorf("images help:\n%s", r.stdout)
	}
	r = runCLI(t, "", "daemon", "--help")
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "Global flags (before the verb)") {
		t.Error("daemon help mentions the client's global flags")
	}
}

func TestMain(m *testing.M) {
	// The CLI must not read the developer's endpoint variables in tests;
	// runCLI passes an empty environment, and this guards Execute's default.
	os.Unsetenv(envRuntimeEndpoint)
	os.Unsetenv(envImageEndpoint)
	os.Exit(m.Run())
}
