package userns

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// pinned pins a user namespace with testOpts under dir for the test.
func pinned(t *testing.T, dir string) string {
	t.Helper()
	h, err := Spawn(testOpts, 0)
	if err != nil {
		t.Fatal(err)
	}
	path, err := Pin(filepath.Join(dir, "userns"), h)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unpin(filepath.Join(dir, "userns")) })
	return path
}

func TestBindIdmappedShiftsOwners(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ns := pinned(t, dir)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "root"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "five"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(src, "five"), 5, 7); err != nil {
		t.Fatal(err)
	}

	if err := BindIdmapped(src, dst, ns, BindOpts{ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
	for name, want := range map[string][2]uint32{"root": {1000, 2000}, "five": {1005, 2007}} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dst, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s through the idmapped mount: %d:%d, want %d:%d", name, st.Uid, st.Gid, want[0], want[1])
		}
	}
	// On disk nothing changed.
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(src, "root"), &st); err != nil || st.Uid != 0 {
		t.Errorf("source owner changed: %d (%v)", st.Uid, err)
	}
	// Read-only clone.
	if err := os.WriteFile(filepath.Join(dst, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write to read-only idmapped clone: %v", err)
	}
	if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dst); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func TestBindIdmappedFailures(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	ns := pinned(t, dir)
	// A path that is not a user namespace.
	if err := BindIdmapped(dir, dir, filepath.Join(dir, "nope"), BindOpts{}); err == nil {
		t.Error("BindIdmapped with a missing namespace succeeded")
	}
	// A missing source.
	if err := BindIdmapped(filepath.Join(dir, "missing"), dir, ns, BindOpts{}); err == nil {
		t.Error("BindIdmapped of a missing source succeeded")
	}
	// The host's own user namespace cannot be an idmap (EINVAL from the
	// kernel): reported as the node's fault, not the request's.
	err := BindIdmapped(dir, dir, "/proc/self/ns/user", BindOpts{})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("idmap with the initial user namespace = %v, want FailedPrecondition", err)
	}
}

func TestDetect(t *testing.T) {
	needRoot(t)
	if err := Detect(t.TempDir()); err != nil {
		t.Fatalf("Detect on this host: %v", err)
	}
	// tmpfs supports idmapped mounts since 6.3, proc never does.
	if err := Detect("/proc"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Detect(/proc) = %v, want FailedPrecondition", err)
	}
}
