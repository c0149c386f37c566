package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A restarted daemon must not have to run the runtime before it serves:
// the features answer is cached per binary, and asked again when the
// binary changes.
func TestFeaturesAreCachedPerBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runtime")
	calls := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho x >> " + calls + "\necho '{\"ociVersionMin\":\"1.0.0\",\"mountOptions\":[\"rro\"]}'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	open := func() *Runtime {
		r, err := New(Config{RuntimePath: bin, RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	ran := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "x")
	}
	for i := range 2 { // the second Runtime is a restarted daemon
		f, err := open().Features(context.Background())
		if err != nil || len(f.MountOptions) != 1 || f.MountOptions[0] != "rro" {
			t.Fatalf("Features #%d = %+v, %v", i, f, err)
		}
	}
	if n := ran(); n != 1 {
		t.Errorf("runtime asked %d times, want once", n)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(bin, later, later); err != nil { // an upgrade
		t.Fatal(err)
	}
	if _, err := open().Features(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ran(); n != 2 {
		t.Errorf("runtime asked %d times after it changed, want 2", n)
	}
}
