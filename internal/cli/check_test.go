package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// checkConfig writes a config whose root, state and CNI dir are the test's
// own, so the host's network config and leases stay out of it.
func checkConfig(t *testing.T) (file, root, state string) {
	t.Helper()
	dir := t.TempDir()
	root, state = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	for _, d := range []string{root, state, filepath.Join(dir, "cni")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file = filepath.Join(dir, "cradle.toml")
	conf := fmt.Sprintf("root = %q\nstate = %q\n[cni]\nconf_dir = %q\n", root, state, filepath.Join(dir, "cni"))
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, root, state
}

// The exit status tells clean (0), problems (1) and a check that could not
// run (2) apart.
func TestCheckExitCodes(t *testing.T) {
	t.Parallel()
	file, root, state := checkConfig(t)
	r := runCLI(t, "", "check", "--config", file)
	if r.code != 0 || r.stdout != "summary problems=0 status=clean\n" {
		t.Fatalf("clean: %+v", r)
	}

	orphan := filepath.Join(state, "pods", "0123abcd")
	if err := os.MkdirAll(orphan, 0o700); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "check", "--config", file)
	if r.code != 1 || !strings.Contains(r.stdout, "kind=pod object=0123abcd problem=orphan-dir") ||
		!strings.Contains(r.stdout, "status=inconsistent") {
		t.Fatalf("orphan dir: %+v", r)
	}
	r = runCLI(t, "", "check", "--config", file, "--repair", "-o", "json")
	var rep struct {
		Findings []struct{ Result string }
		Clean    bool
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 || !rep.Clean || len(rep.Findings) != 1 || rep.Findings[0].Result != "repaired" {
		t.Fatalf("repair: %v %+v", err, r)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan dir after the repair: %v", err)
	}

	for _, args := range [][]string{{"check", "--bogus"}, {"check", "extra"}, {"check", "--config", file, "-o", "yaml"}} {
		if r := runCLI(t, "", args...); r.code != 2 || !strings.Contains(r.stderr, "Error:") {
			t.Errorf("%v: %+v", args, r)
		}
	}

	// A daemon's lock (an flock by another open file, its pid inside).
	f, err := os.OpenFile(filepath.Join(root, "cradle.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.WriteString("777\n")
	if r := runCLI(t, "", "check", "--config", file); r.code != 2 || !strings.Contains(r.stderr, "pid 777") {
		t.Errorf("beside a daemon: %+v", r)
	}
}
