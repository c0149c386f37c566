package oci

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const strayConmonEnv = "CRADLE_TEST_STRAY_CONMON"

// A conmon that a killed daemon started, and that no record names, is
// killed when the container's files go: otherwise it could recreate them
// (its --persist-dir) after the next daemon undid the create.
func TestDeleteKillsAStrayConmon(t *testing.T) {
	dir := t.TempDir()
	conmon := filepath.Join(dir, "conmon")
	if err := os.WriteFile(conmon, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{RuntimePath: "/bin/true", RuntimeRoot: dir + "/r", ConmonPath: conmon, StateDir: dir + "/s"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := os.MkdirAll(r.ctrDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	// This test binary, named like the configured conmon, with conmon's
	// -c <id> and --persist-dir.
	stray := &exec.Cmd{Path: os.Args[0], Args: []string{conmon, "-c", id, "--persist-dir", r.ctrDir(id)},
		Env: append(os.Environ(), strayConmonEnv+"=1")}
	other := &exec.Cmd{Path: os.Args[0], Args: []string{conmon, "-c", "f" + id[1:]},
		Env: append(os.Environ(), strayConmonEnv+"=1")}
	for _, c := range []*exec.Cmd{stray, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	exited := make(chan error, 1)
	go func() { exited <- stray.Wait() }()
	defer func() { other.Process.Kill(); other.Wait() }()

	if err := r.DeleteFiles(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		stray.Process.Kill()
		t.Fatal("the stray conmon of the deleted container still runs")
	}
	if _, err := os.Stat(r.ctrDir(id)); !os.IsNotExist(err) {
		t.Errorf("container dir after DeleteFiles: %v", err)
	}
	if !r.isConmonOf(other.Process.Pid, "f"+id[1:]) {
		t.Error("the conmon of another container was killed too")
	}
}
