package oci

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// An exec's timeout is its command's: a runtime slow to start the process
// (a loaded node) must not fail a probe whose command is quick, as it
// does not on containerd.
func TestExecSyncTimeoutStartsWithTheProcess(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runtime")
	// exec: take 600 ms to "start", then write the pid file and finish at once.
	script := `#!/bin/sh
pidfile=
while [ $# -gt 0 ]; do
	case "$1" in --pid-file) pidfile=$2; shift ;; esac
	shift
done
sleep 0.6
echo $$ > "$pidfile"
echo ran
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{RuntimePath: bin, RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	os.Mkdir(r.ctrDir("c"), 0o700)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.ExecSync(ctx, "c", ExecOpts{Cmd: []string{"true"}, Process: &specs.Process{}, Timeout: 200 * time.Millisecond})
	if err != nil || string(res.Stdout) != "ran\n" {
		t.Fatalf("ExecSync = %q, %v; want the command's output: its 200ms had not begun while the runtime started it", res.Stdout, err)
	}
}
