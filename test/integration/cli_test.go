package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// TestCLIImageVerbsAgainstDaemon drives the image verbs of the cradle CLI
// against a real daemon, the way an operator would.
func TestCLIImageVerbsAgainstDaemon(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("cli/busybox:1", img); err != nil {
		t.Fatal(err)
	}
	configDigest, _ := img.ConfigName()
	ref := reg.Ref("cli/busybox:1")
	d := startDaemon(t, daemonOpts{})

	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := d.cli(args...)
		if err != nil {
			t.Fatalf("cradle %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	out := mustCLI("version")
	if e := contains(out, "RuntimeName:", "cradle", "RuntimeApiVersion:", "v1"); e != nil {
		t.Error(e)
	}
	out = mustCLI("pull", ref)
	if e := contains(out, configDigest.String()); e != nil {
		t.Errorf("pull output: %v", e)
	}
	// Not a terminal: the result line and no progress display.
	if strings.ContainsAny(out, "\r\033") || strings.Contains(out, "Pulling") {
		t.Errorf("pull wrote terminal control to a pipe: %q", out)
	}
	out = mustCLI("info")
	var info struct {
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status bool   `json:"status"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || len(info.Status.Conditions) != 2 ||
		info.Status.Conditions[0].Type != "RuntimeReady" || !info.Status.Conditions[0].Status {
		t.Errorf("info = %v\n%s", err, out)
	}
	out = mustCLI("images")
	if e := contains(out, "IMAGE", "TAG", "IMAGE ID", reg.Host+"/cli/busybox", configDigest.Hex[:13]); e != nil {
		t.Errorf("images table: %v", e)
	}
	out = mustCLI("images", "-q")
	if strings.TrimSpace(out) != configDigest.String() {
		t.Errorf("images -q = %q, want %s", out, configDigest)
	}
	var listed struct {
		Images []struct {
			ID       string   `json:"id"`
			RepoTags []string `json:"repoTags"`
		} `json:"images"`
	}
	if err := json.Unmarshal([]byte(mustCLI("images", "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Images) != 1 || listed.Images[0].ID != configDigest.String() || listed.Images[0].RepoTags[0] != ref {
		t.Errorf("images -o json = %+v", listed)
	}
	out = mustCLI("inspecti", ref)
	if e := contains(out, configDigest.String(), ref); e != nil {
		t.Errorf("inspecti: %v", e)
	}
	out = mustCLI("imagefsinfo")
	if e := contains(out, "usedBytes", "inodesUsed"); e != nil {
		t.Errorf("imagefsinfo: %v", e)
	}
	mustCLI("rmi", ref)
	if out := mustCLI("images", "-q"); strings.TrimSpace(out) != "" {
		t.Errorf("images after rmi: %q", out)
	}
	if r := runCradle(t, d, "inspecti", ref); r.code != 1 || !strings.Contains(r.stderr, "no such image") || r.stdout != "" {
		t.Errorf("inspecti of a removed image: %+v", r)
	}

	// The endpoint also comes from the environment, like crictl.
	cmd := exec.Command(binary(t), "version")
	cmd.Env = append(os.Environ(), "CONTAINER_RUNTIME_ENDPOINT=unix://"+d.socket)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "cradle") {
		t.Errorf("CONTAINER_RUNTIME_ENDPOINT: %v\n%s", err, out)
	}
}

// cliRun is one finished CLI run.
type cliRun struct {
	stdout, stderr string
	code           int
}

func runCradle(t *testing.T, d *daemon, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"--runtime-endpoint", "unix://" + d.socket}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliRun{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("cradle %v: %v", args, err)
	}
	return r
}

// The image verbs against a real daemon: the images filter, rmi of several
// names with a missing one among them, exit codes, and the pull display on
// a real terminal.
func TestCLIImageFilterRmiAndTerminal(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	one, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	two, err := testkit.BusyboxImage(testkit.ImageConfig{User: "2"})
	if err != nil {
		t.Fatal(err)
	}
	reg.MustPush(t, "cli/one:1", one)
	reg.MustPush(t, "cli/two:1", two)
	oneRef, twoRef := reg.Ref("cli/one:1"), reg.Ref("cli/two:1")
	oneID, _ := one.ConfigName()
	twoID, _ := two.ConfigName()
	d := startDaemon(t, daemonOpts{})

	// pull on a terminal: the spinner is drawn, then erased before the result.
	master, slave := openPTY(t)
	cmd := exec.Command(binary(t), "--runtime-endpoint", "unix://"+d.socket, "pull", oneRef)
	cmd.Stdout, cmd.Stderr = slave, slave
	term := &ptyReader{}
	go term.drain(master)
	if err := cmd.Run(); err != nil {
		t.Fatalf("pull on a terminal: %v\n%q", err, term.String())
	}
	term.waitFor(t, "Image is up to date for "+oneID.String(), nil)
	if e := contains(term.String(), " Pulling "+oneRef+" (", "\r\033[KImage is up to date for "); e != nil {
		t.Errorf("no progress display on a terminal: %v", e)
	}

	if r := runCradle(t, d, "pull", twoRef); r.code != 0 {
		t.Fatalf("pull: %+v", r)
	}
	// A filter argument lists only the image it names; an absent one, none.
	if r := runCradle(t, d, "images", "-q", twoRef); r.code != 0 || strings.TrimSpace(r.stdout) != twoID.String() {
		t.Errorf("images -q %s = %+v, want only %s", twoRef, r, twoID)
	}
	if r := runCradle(t, d, "images", reg.Ref("cli/one:1")); r.code != 0 || !strings.Contains(r.stdout, reg.Host+"/cli/one") || strings.Contains(r.stdout, "cli/two") {
		t.Errorf("images %s = %+v", oneRef, r)
	}
	if r := runCradle(t, d, "images", "-q", reg.Ref("cli/absent:1")); r.code != 0 || r.stdout != "" {
		t.Errorf("images of an absent image = %+v", r)
	}
	if r := runCradle(t, d, "images", "UPPER::bad"); r.code != 1 || !strings.Contains(r.stderr, "invalid image reference") {
		t.Errorf("images with a malformed filter = %+v", r)
	}

	// rmi of two images and a missing one: both removed, the miss named,
	// exit code 1.
	r := runCradle(t, d, "rmi", oneRef, reg.Ref("cli/ghost:1"), twoID.String())
	if r.code != 1 || !strings.Contains(r.stderr, `no such image "`+reg.Ref("cli/ghost:1")+`"`) {
		t.Errorf("rmi with a missing image = %+v", r)
	}
	if r.stdout != "Deleted: "+oneRef+"\nDeleted: "+twoRef+"\n" {
		t.Errorf("rmi stdout = %q", r.stdout)
	}
	if r := runCradle(t, d, "images", "-q"); r.code != 0 || r.stdout != "" {
		t.Errorf("images after rmi = %+v", r)
	}
	// A usage mistake and an unreachable runtime exit 1 too.
	if r := runCradle(t, d, "rmi"); r.code != 1 || !strings.Contains(r.stderr, "needs an IMAGE") {
		t.Errorf("rmi without arguments = %+v", r)
	}
	if r := runCradle(t, d, "--runtime-endpoint", "unix://"+d.dir+"/nobody.sock", "version"); r.code != 1 || !strings.Contains(r.stderr, "cannot connect") {
		t.Errorf("version against no runtime = %+v", r)
	}
}
