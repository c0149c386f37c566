package layer

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// These tests stack layers committed by the store and mount a real overlayfs
// on them, so they check what a container sees rather than how the diff
// directories happen to look.

// privateMountNS moves the calling test goroutine, for good, onto an OS
// thread with its own mount namespace. Mounts made there are invisible to the
// host and die with the thread when the test ends, even if it crashes.
func privateMountNS(t *testing.T) {
	t.Helper()
	requireRoot(t)
	// Never unlocked: the thread exits with the test goroutine.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		t.Fatalf("unshare mount namespace: %v", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatalf("make / private: %v", err)
	}
}

// mountStack mounts an overlay of the store's layers chain (bottom first)
// with a fresh upper dir, as a container rootfs is, and returns its path.
// The caller must be in privateMountNS.
func mountStack(t *testing.T, s *Store, chain ...digest.Digest) string {
	t.Helper()
	var lowers []string
	for _, id := range slices.Backward(chain) {
		d := s.DiffDir(id)
		if d == "" {
			t.Fatalf("layer %s not in the store", id)
		}
		lowers = append(lowers, d)
	}
	base := t.TempDir()
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", merged, err)
		}
	})
	return merged
}

// ensureStack commits each layer on top of the previous and returns the
// chain IDs, bottom first.
func ensureStack(t *testing.T, s *Store, layers ...[]tent) []digest.Digest {
	t.Helper()
	var chain []digest.Digest
	var parent digest.Digest
	for _, ents := range layers {
		diffID, fill := fillWith(t, ents...)
		id := ChainID(parent, diffID)
		if _, err := s.Ensure(context.Background(), id, parent, fill); err != nil {
			t.Fatalf("Ensure layer %d: %v", len(chain), err)
		}
		chain = append(chain, id)
		parent = id
	}
	return chain
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	out := names(t, dir)
	slices.Sort(out)
	return out
}

func TestOverlayWhiteoutsAndReplacements(t *testing.T) {
	privateMountNS(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)
	s := openStore(t)
	chain := ensureStack(t, s,
		[]tent{
			dirEnt("etc"), reg("etc/passwd", "root"), reg("etc/group", "root"),
			dirEnt("d"), reg("d/a", "a"), reg("d/sub/b", "b"),
			dirEnt("o"), reg("o/old", "1"), reg("o/sub/old", "2"),
			reg("r/old", "old"), reg("rf", "old"), reg("rd/old", "old"),
			reg("f", "file"), reg("g/x", "x"),
			reg("keep/a", "a"),
			symEnt("link", outside), // absolute: resolved in the container only
		},
		[]tent{
			reg("etc/.wh.passwd", ""),
			reg(".wh.d", ""),
			reg("o/.wh..wh..opq", ""), reg("o/new", "new"),
			reg(".wh.r", ""), reg(".wh.rf", ""),
			reg(".wh.rd", ""), dirEnt("rd"), reg("rd/new", "new"), // deleted and made anew in one layer
			dirEnt("f"), reg("f/inside", "in"),
			reg("g", "now a file"),
			reg("keep/b", "b"),
			reg("link/pwned", "x"), // the lower symlink is not there to follow
		},
		[]tent{
			reg("r/new", "new"), // re-created after a whiteout
			reg("rf", "new"),
		},
	)
	m := mountStack(t, s, chain...)

	for _, p := range []string{"etc/passwd", "d", "d/a", "r/old", "o/old", "o/sub", "rd/old", "g/x", "f/x"} {
		if _, err := os.Lstat(filepath.Join(m, p)); !os.IsNotExist(err) && !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s is visible (%v), want it hidden", p, err)
		}
	}
	for dir, want := range map[string][]string{
		"etc":  {"group"},
		"o":    {"new"},
		"r":    {"new"},
		"rd":   {"new"},
		"f":    {"inside"},
		"keep": {"a", "b"},
		"link": {"pwned"},
	} {
		if got := dirNames(t, filepath.Join(m, dir)); !slices.Equal(got, want) {
			t.Errorf("%s holds %v, want %v", dir, got, want)
		}
	}
	for p, want := range map[string]string{"rf": "new", "g": "now a file", "f/inside": "in", "etc/group": "root"} {
		if got := readFile(t, filepath.Join(m, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	// No marker of the layers' own bookkeeping reaches the container.
	filepath.WalkDir(m, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		if strings.HasPrefix(d.Name(), whiteoutPrefix) || d.Type()&os.ModeCharDevice != 0 {
			t.Errorf("%s is visible in the container", p)
		}
		return nil
	})
	if d := diffSnapshots(before, snapshot(t, outside)); d != "" {
		t.Errorf("the directory a lower symlink named changed:\n%s", d)
	}
}

func TestOverlayMetadata(t *testing.T) {
	privateMountNS(t)
	old := time.Date(1999, 12, 31, 23, 59, 58, 123456789, time.UTC)
	older := time.Date(1990, 1, 2, 3, 4, 5, 0, time.UTC)
	timed := func(e tent) tent { e.ModTime, e.AccessTime = old, older; return e }
	owned := func(e tent, uid, gid int) tent { e.Uid, e.Gid = uid, gid; return e }
	capValue := string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // cap_net_raw+ep
	long := strings.Repeat("n", 150) + "/" + strings.Repeat("m", 200) + "/" + strings.Repeat("f", 255)
	dev := func(typ byte, name string, mode int64, major, minor int64) tent {
		return tent{Header: tar.Header{Typeflag: typ, Name: name, Mode: mode, Devmajor: major, Devminor: minor, ModTime: old}}
	}
	s := openStore(t)
	chain := ensureStack(t, s, []tent{
		// Directory times come first and must survive what is written in them.
		timed(withMode(dirEnt("t"), 0o750)), timed(dirEnt("t/sub")), reg("t/sub/f", "x"), reg("t/g", "y"),
		owned(withMode(reg("bin/su", "su"), 0o4755), 0, 0),
		owned(withMode(dirEnt("srv"), 0o2775), 100000, 200000),
		withMode(dirEnt("tmp"), 0o1777),
		owned(withXattr(withMode(reg("bin/ping", "ping"), 0o4711), "security.capability", capValue), 70000, 4294967294),
		owned(symEnt("bin/ping-link", "ping"), 65536, 65537),
		timed(symEnt("t/abs", "/etc/passwd")),
		dev(tar.TypeChar, "dev/null", 0o666, 1, 3),
		dev(tar.TypeBlock, "dev/big", 0o600, 259, 1<<19),
		dev(tar.TypeFifo, "dev/pipe", 0o620, 0, 0),
		reg("h/target", "shared"), linkEnt("h/link1", "h/target"), linkEnt("h/sub/link2", "/h/target"),
		symEnt("h/sym", "target"), linkEnt("h/symlink-link", "h/sym"),
		symEnt("c/a", "b"), symEnt("c/b", "../c/d"), symEnt("c/d", "../h/target"), symEnt("c/e", "a"),
		reg(long, "long"), symEnt("longlink", "/"+long),
		reg("dup", "first"), withMode(reg("dup", "second"), 0o600),
	})
	m := mountStack(t, s, chain...)
	p := func(rel string) string { return filepath.Join(m, rel) }

	// Times, checked before anything reads a directory (which may move atime).
	for rel, want := range map[string]time.Time{"t": old, "t/sub": old, "t/abs": old, "dev/null": old} {
		st := lstat(t, p(rel))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("%s mtime = %v, want %v", rel, got.UTC(), want)
		}
	}
	for _, rel := range []string{"t", "t/sub"} {
		if got := time.Unix(lstat(t, p(rel)).Atim.Unix()); !got.Equal(older) {
			t.Errorf("%s atime = %v, want %v", rel, got.UTC(), older)
		}
	}

	for rel, want := range map[string]struct {
		typ, perm uint32
		uid, gid  uint32
	}{
		"t":             {syscall.S_IFDIR, 0o750, 0, 0},
		"bin/su":        {syscall.S_IFREG, 0o4755, 0, 0},
		"srv":           {syscall.S_IFDIR, 0o2775, 100000, 200000},
		"tmp":           {syscall.S_IFDIR, 0o1777, 0, 0},
		"bin/ping":      {syscall.S_IFREG, 0o4711, 70000, 4294967294},
		"bin/ping-link": {syscall.S_IFLNK, 0o777, 65536, 65537},
		"dev/null":      {syscall.S_IFCHR, 0o666, 0, 0},
		"dev/big":       {syscall.S_IFBLK, 0o600, 0, 0},
		"dev/pipe":      {syscall.S_IFIFO, 0o620, 0, 0},
		"dup":           {syscall.S_IFREG, 0o600, 0, 0},
	} {
		st := lstat(t, p(rel))
		if st.Mode&syscall.S_IFMT != want.typ || st.Mode&0o7777 != want.perm || st.Uid != want.uid || st.Gid != want.gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o|%o owner %d:%d", rel, st.Mode, st.Uid, st.Gid, want.typ, want.perm, want.uid, want.gid)
		}
	}
	if st := lstat(t, p("dev/null")); st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("dev/null rdev = %x", st.Rdev)
	}
	if st := lstat(t, p("dev/big")); st.Rdev != unix.Mkdev(259, 1<<19) {
		t.Errorf("dev/big rdev = %x", st.Rdev)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(p("bin/ping"), "security.capability", buf); err != nil || string(buf[:n]) != capValue {
		t.Errorf("bin/ping security.capability = %x, %v", buf[:n], err)
	}

	target := lstat(t, p("h/target"))
	for _, rel := range []string{"h/link1", "h/sub/link2"} {
		if st := lstat(t, p(rel)); st.Ino != target.Ino || st.Nlink != 3 {
			t.Errorf("%s: ino %d nlink %d, want a hard link of h/target (ino %d, 3 links)", rel, st.Ino, st.Nlink, target.Ino)
		}
	}
	if got, err := os.Readlink(p("h/symlink-link")); err != nil || got != "target" {
		t.Errorf("hard link to a symlink reads %q, %v", got, err)
	}
	// Symlink chains resolve inside the mount (absolute targets only
	// would in the container's root, which the host path is not).
	for _, rel := range []string{"c/a", "c/e", "h/symlink-link"} {
		if got := readFile(t, p(rel)); got != "shared" {
			t.Errorf("%s = %q, want the content of h/target", rel, got)
		}
	}
	if got, err := os.Readlink(p("t/abs")); err != nil || got != "/etc/passwd" {
		t.Errorf("t/abs -> %q, %v", got, err)
	}
	if got := readFile(t, p(long)); got != "long" {
		t.Errorf("long name = %q", got)
	}
	if got, err := os.Readlink(p("longlink")); err != nil || got != "/"+long {
		t.Errorf("longlink -> %q, %v", got, err)
	}
	if got := readFile(t, p("dup")); got != "second" {
		t.Errorf("dup = %q, want the last entry", got)
	}
	// Files written after their directory's entry did not move its mtime.
	if got := dirNames(t, p("t")); !slices.Equal(got, []string{"abs", "g", "sub"}) {
		t.Errorf("t holds %v", got)
	}
}
