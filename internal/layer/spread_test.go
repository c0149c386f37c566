package layer

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func dirFlags(t *testing.T, dir string) (uint32, error) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
}

// Open marks the scratch dir so that each unpack starts in a block group of
// its own (on filesystems that know the flag), and a store opened again keeps
// it.
func TestOpenSpreadsUnpacks(t *testing.T) {
	probe := t.TempDir()
	spreadChildren(probe)
	if fl, err := dirFlags(t, probe); err != nil || fl&fsTopdirFl == 0 {
		t.Skipf("the filesystem of %s keeps no FS_TOPDIR_FL (flags %#x, %v)", probe, fl, err)
	}
	dir := filepath.Join(t.TempDir(), "layers")
	for range 2 {
		if _, err := Open(dir); err != nil {
			t.Fatal(err)
		}
		fl, err := dirFlags(t, filepath.Join(dir, tmpDirName))
		if err != nil || fl&fsTopdirFl == 0 {
			t.Fatalf("tmp/ flags %#x, %v; want FS_TOPDIR_FL", fl, err)
		}
	}
}

// The hint is best effort: a path that is no directory, or a filesystem
// without the flag, changes nothing and fails nothing.
func TestSpreadChildrenIgnoresFailures(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spreadChildren(f)
	fd, err := unix.Open(f, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil && fl&fsTopdirFl != 0 {
		t.Errorf("a regular file got FS_TOPDIR_FL")
	}
	absent := filepath.Join(t.TempDir(), "absent")
	spreadChildren(absent)
	if _, err := os.Stat(absent); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spreadChildren made %s: %v", absent, err)
	}
	spreadChildren("/proc") // procfs has no such flag: no panic, no error to handle
}
