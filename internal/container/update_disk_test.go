package container

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A bundle rewrite that runs out of space leaves the old config.json and
// no temporary file.
func TestRewriteBundleResourcesOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(state, unix.MNT_DETACH) })
	m := &Manager{cfg: Config{State: state}}
	bundle := m.bundle("c1")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	old := []byte(`{"ociVersion":"1.0.2","linux":{}}`)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(state, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	f.Close()

	limit := int64(1 << 20)
	err = m.rewriteBundleResources("c1", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("rewrite on a full disk = %v, want ENOSPC", err)
	}
	entries, _ := os.ReadDir(bundle)
	if len(entries) != 1 || entries[0].Name() != "config.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("bundle holds %v, want only config.json", names)
	}
	if got, _ := os.ReadFile(filepath.Join(bundle, "config.json")); string(got) != string(old) {
		t.Errorf("config.json changed: %s", got)
	}
}
