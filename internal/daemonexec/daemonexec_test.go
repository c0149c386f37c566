package daemonexec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestTarget(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "cradle")
	if _, _, ok := target([]string{self, "daemon"}, self); ok {
		t.Fatal("exec without a cradled beside cradle")
	}
	bin := filepath.Join(dir, Binary)
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	got, argv, ok := target([]string{self, "daemon", "--root", "/r", "--config=/c"}, self)
	if !ok || got != bin || !slices.Equal(argv, []string{bin, "--root", "/r", "--config=/c"}) {
		t.Fatalf("daemon: %q %q %v", got, argv, ok)
	}
	for _, args := range [][]string{{self}, {self, "images"}, {self, "-r", "unix:///x", "daemon"}, {self, "version", "daemon"}} {
		if _, _, ok := target(args, self); ok {
			t.Errorf("%q became an exec of cradled", args)
		}
	}
}
