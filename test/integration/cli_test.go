package integration

import (
	"encoding/json"
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
	if out, err := d.cli("inspecti", ref); err == nil {
		t.Errorf("inspecti of a removed image succeeded: %s", out)
	}

	// The endpoint also comes from the environment, like crictl.
	cmd := exec.Command(binary(t), "version")
	cmd.Env = append(os.Environ(), "CONTAINER_RUNTIME_ENDPOINT=unix://"+d.socket)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "cradle") {
		t.Errorf("CONTAINER_RUNTIME_ENDPOINT: %v\n%s", err, out)
	}
}
