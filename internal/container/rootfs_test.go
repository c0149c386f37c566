package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// The writable overlay is volatile (its unmount syncs nothing), and the
// incompat dir a volatile mount leaves does not stop a later mount of the
// same dirs, as a remount after a restart needs.
func TestRootfsIsVolatileAndRemounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	tmp := t.TempDir()
	lower := filepath.Join(tmp, "lower")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, target := filepath.Join(tmp, "ctr"), filepath.Join(tmp, "rootfs")
	for round := range 2 {
		if err := mountRootfs(dir, target, []string{lower}); err != nil {
			t.Fatalf("mount %d: %v", round, err)
		}
		infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(target))
		if err != nil || len(infos) != 1 {
			t.Fatalf("mount %d: %v %v", round, infos, err)
		}
		// Newer kernels show it as fsync=volatile.
		if o := "," + infos[0].VFSOptions + ","; !strings.Contains(o, ",volatile,") && !strings.Contains(o, ",fsync=volatile,") {
			t.Errorf("mount %d: super options %q lack volatile", round, infos[0].VFSOptions)
		}
		if err := os.WriteFile(filepath.Join(target, "g"), []byte("y"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unmountRootfs(target); err != nil {
			t.Fatalf("unmount %d: %v", round, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "upper", "g")); err != nil {
		t.Errorf("the writable layer lost its file: %v", err)
	}
}
