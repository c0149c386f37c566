package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// `cradle daemon` hands its flags to cradled, found on PATH when it is not
// beside the binary (here: beside the test binary, it never is).
func TestDaemonExecsCradled(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, DaemonBinary)
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	env, _, _ := testEnv()
	var gotBin string
	var gotArgs []string
	env.exec = func(argv0 string, argv, _ []string) error {
		gotBin, gotArgs = argv0, argv
		return nil
	}
	r := runCLIEnv(t, env, "", "daemon", "--root", "/r", "--state=/s", "--config", "/c.toml", "--log-level", "debug")
	mustSucceed(t, r)
	want := []string{bin, "--config=/c.toml", "--root=/r", "--state=/s", "--log-level=debug"}
	if gotBin != bin || !slices.Equal(gotArgs, want) {
		t.Fatalf("exec %q %q, want %q %q", gotBin, gotArgs, bin, want)
	}

	// Without cradled anywhere: an error naming it and how to build it.
	t.Setenv("PATH", t.TempDir())
	gotBin = ""
	r = runCLIEnv(t, env, "", "daemon")
	if r.code != 1 || gotBin != "" || !strings.Contains(r.stderr, "cradled") || !strings.Contains(r.stderr, "go build") {
		t.Fatalf("without cradled: code %d, exec %q, stderr %q", r.code, gotBin, r.stderr)
	}
}
