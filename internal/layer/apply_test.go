package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestApplyContentAndModes(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	st := mustApply(t, dir,
		withMode(dirEnt("./"), 0o700), // the root entry must not change dir
		dirEnt("etc/"),
		withMode(reg("etc/shadow", "secret"), 0o640),
		withMode(reg("/usr/bin/su", "su-binary"), 0o4755), // leading "/" and an implicit parent
		withMode(dirEnt("var/mail"), 0o2775),
		withMode(dirEnt("tmp"), 0o1777),
		symEnt("bin/sh", "/bin/busybox"), // absolute targets are content
		reg("empty", ""),
	)

	if got := readFile(t, filepath.Join(dir, "etc/shadow")); got != "secret" {
		t.Errorf("etc/shadow = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "usr/bin/su")); got != "su-binary" {
		t.Errorf("usr/bin/su = %q", got)
	}
	for path, want := range map[string]uint32{
		".":          0o711,
		"etc/shadow": 0o640,
		"usr/bin/su": 0o4755,
		"var/mail":   0o2775,
		"tmp":        0o1777,
		"usr":        0o755, // implicit parents are 0755 whatever the umask
		"usr/bin":    0o755,
		"empty":      0o644,
	} {
		if got := lstat(t, filepath.Join(dir, path)).Mode & 0o7777; got != want {
			t.Errorf("%s mode = %o, want %o", path, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "/bin/busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	// etc, shadow, usr, bin, su, var, mail, tmp, bin, sh, empty.
	if want := (ApplyStats{Bytes: int64(len("secret") + len("su-binary")), Inodes: 11}); st != want {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
}

func TestApplyTimes(t *testing.T) {
	dir := t.TempDir()
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	atime := time.Date(2002, 1, 1, 0, 0, 0, 0, time.UTC)
	f := reg("d/f", "x")
	f.ModTime, f.AccessTime = mtime, atime
	d := dirEnt("d")
	d.ModTime = mtime
	target := reg("target", "t")
	target.ModTime = testTime
	l := symEnt("d/link", "../target")
	l.ModTime = mtime
	// d is listed before its children, which would bump its mtime.
	mustApply(t, dir, target, d, f, l, reg("d/later", "y"))

	for _, path := range []string{"d", "d/f", "d/link"} {
		st := lstat(t, filepath.Join(dir, path))
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("%s mtime = %v, want %v", path, got, mtime)
		}
	}
	if st := lstat(t, filepath.Join(dir, "d/f")); !time.Unix(st.Atim.Unix()).Equal(atime) {
		t.Errorf("d/f atime = %v, want %v", time.Unix(st.Atim.Unix()), atime)
	}
	// Setting the symlink's times must not touch what it points to.
	if st := lstat(t, filepath.Join(dir, "target")); !time.Unix(st.Mtim.Unix()).Equal(testTime) {
		t.Errorf("symlink target mtime changed to %v", time.Unix(st.Mtim.Unix()))
	}
}

func TestApplyHardlinks(t *testing.T) {
	dir := t.TempDir()
	st := mustApply(t, dir, reg("a/f", "shared"), linkEnt("b/g", "a/f"), linkEnt("h", "/a/f"), symEnt("s", "/nowhere"), linkEnt("hs", "s"))
	fi := lstat(t, filepath.Join(dir, "a/f"))
	for _, p := range []string{"b/g", "h"} {
		if got := lstat(t, filepath.Join(dir, p)); got.Ino != fi.Ino {
			t.Errorf("%s is not a hard link of a/f", p)
		}
	}
	// A hard link to a symlink links the symlink, it does not follow it.
	if got := lstat(t, filepath.Join(dir, "hs")); got.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Errorf("hs mode = %o, want a symlink", got.Mode)
	}
	if st.Bytes != int64(len("shared")) || st.Inodes != 7 {
		t.Errorf("stats = %+v", st)
	}

	for name, ents := range map[string][]tent{
		"missing target": {linkEnt("l", "nope")},
		"directory":      {dirEnt("d"), linkEnt("l", "d")},
		"itself":         {reg("l", "x"), linkEnt("l", "l")},
		"layer root":     {linkEnt("l", "./")},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := applyEnts(t, t.TempDir(), ents...)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"l"`) {
				t.Fatalf("err = %v, want InvalidArgument naming l", err)
			}
		})
	}
}

func TestApplyReplaces(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mustApply(t, dir,
		// file over a directory with content
		dirEnt("a"), reg("a/child", "x"), reg("a", "file now"),
		// directory over a file
		reg("b", "file"), dirEnt("b"), reg("b/child", "y"),
		// directory over a directory keeps content, takes the new mode
		dirEnt("c"), reg("c/keep", "z"), withMode(dirEnt("c"), 0o700),
		// file over a symlink pointing outside replaces the link
		symEnt("d", victim), reg("d", "mine"),
		// symlink over a file, and a directory over a symlink
		reg("e", "old"), symEnt("e", "a"),
		symEnt("f", outside), dirEnt("f"), reg("f/inside", "w"),
	)
	check := func(path, want string) {
		t.Helper()
		if got := readFile(t, filepath.Join(dir, path)); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	check("a", "file now")
	check("b/child", "y")
	check("c/keep", "z")
	check("d", "mine")
	check("f/inside", "w")
	if m := lstat(t, filepath.Join(dir, "c")).Mode & 0o7777; m != 0o700 {
		t.Errorf("c mode = %o, want 700", m)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "e")); target != "a" {
		t.Errorf("e -> %q, want a", target)
	}
	if got := readFile(t, victim); got != "keep" {
		t.Errorf("file outside was written through a symlink: %q", got)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("outside dir has %d entries, want 1", len(entries))
	}
}

func TestApplyFollowsSymlinksInside(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, dirEnt("real"), symEnt("alias", "real"), symEnt("up", "real/../real"), reg("alias/f", "1"), reg("up/g", "2"))
	if got := readFile(t, filepath.Join(dir, "real/f")); got != "1" {
		t.Errorf("real/f = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "real/g")); got != "2" {
		t.Errorf("real/g = %q", got)
	}
}

// escapeCase is a layer that tries to reach outside the directory it is
// applied to; entry is the entry the error must name.
type escapeCase struct {
	name  string
	entry string
	ents  []tent
}

// escapeCases aim at outside, a directory beside the layer directory that
// holds a file "passwd" and a directory "sub".
func escapeCases(outside string) []escapeCase {
	return []escapeCase{
		{"dotdot", "../outside/pwned", []tent{reg("../outside/pwned", "x")}},
		{"inner dotdot", "a/../../outside/pwned", []tent{reg("a/../../outside/pwned", "x")}},
		{"harmless dotdot", "a/../b", []tent{reg("a/../b", "x")}},
		{"absolute dotdot", "/../outside/pwned", []tent{reg("/../outside/pwned", "x")}},
		{"dotdot dir", "../outside/newdir", []tent{dirEnt("../outside/newdir")}},
		{"dotdot symlink", "../outside/s", []tent{symEnt("../outside/s", "x")}},
		{"dotdot whiteout", "../outside/.wh.passwd", []tent{reg("../outside/.wh.passwd", "")}},
		{"absolute symlink parent", "link/passwd", []tent{symEnt("link", outside), reg("link/passwd", "pwned")}},
		{"relative symlink parent", "link/passwd", []tent{symEnt("link", "../../../../../../../.."+outside), reg("link/passwd", "pwned")}},
		{"climbing symlink parent", "link/outside/passwd", []tent{symEnt("link", "../"), reg("link/outside/passwd", "pwned")}},
		{"symlink chain", "b/passwd", []tent{symEnt("a", outside), symEnt("b", "a"), reg("b/passwd", "pwned")}},
		{"relative symlink chain", "c/outside/passwd", []tent{dirEnt("d"), symEnt("d/up", ".."), symEnt("b", "d/up"), symEnt("c", "b/.."), reg("c/outside/passwd", "pwned")}},
		{"symlink parent dir entry", "link/newdir", []tent{symEnt("link", outside), dirEnt("link/newdir")}},
		{"symlink parent symlink", "link/s", []tent{symEnt("link", outside), symEnt("link/s", "x")}},
		{"symlink parent hardlink", "link/h", []tent{reg("f", "x"), symEnt("link", outside), linkEnt("link/h", "f")}},
		{"symlink parent fifo", "link/fifo", []tent{symEnt("link", outside), {Header: tar.Header{Typeflag: tar.TypeFifo, Name: "link/fifo", Mode: 0o644}}}},
		{"symlink parent whiteout", "link/.wh.passwd", []tent{symEnt("link", outside), reg("link/.wh.passwd", "")}},
		{"symlink parent opaque", "link/.wh..wh..opq", []tent{symEnt("link", outside), reg("link/.wh..wh..opq", "")}},
		{"symlink grandparent opaque", "link/sub/.wh..wh..opq", []tent{symEnt("link", outside), reg("link/sub/.wh..wh..opq", "")}},
		{"cached dir replaced by symlink", "d/y", []tent{dirEnt("d"), reg("d/x", "x"), symEnt("d", outside), reg("d/y", "pwned")}},
		{"deep symlink parent", "a/b/link/c/passwd", []tent{dirEnt("a/b"), symEnt("a/b/link", outside), reg("a/b/link/c/passwd", "x")}},
		{"hardlink dotdot", "h", []tent{linkEnt("h", "../outside/passwd")}},
		{"hardlink name dotdot", "a/../../outside/h", []tent{reg("f", "x"), linkEnt("a/../../outside/h", "f")}},
		{"hardlink absolute target", "h", []tent{linkEnt("h", outside+"/passwd")}},
		{"hardlink through symlink", "h", []tent{symEnt("link", outside), linkEnt("h", "link/passwd")}},
		{"hardlink through symlink chain", "h", []tent{symEnt("a", outside), symEnt("b", "a"), linkEnt("h", "b/passwd")}},
	}
}

func TestApplyEscapes(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range escapeCases(outside) {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, outside)
			dir := filepath.Join(base, "layer")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			_, err := applyEnts(t, dir, tc.ents...)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			if !strings.Contains(err.Error(), `"`+tc.entry+`"`) {
				t.Errorf("error %q does not name entry %q", err, tc.entry)
			}
			if got := names(t, base); !slices.Equal(got, []string{"layer", "outside"}) {
				t.Errorf("beside the layer: %v", got)
			}
			if d := diffSnapshots(before, snapshot(t, outside)); d != "" {
				t.Errorf("outside the layer changed:\n%s", d)
			}
		})
	}
}

// A hard link to a symlink that points outside links the symlink itself:
// its target is content for the container to resolve, never followed here,
// and an entry that later takes the name replaces the link.
func TestApplyHardlinkToEscapingSymlink(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "passwd")
	if err := os.WriteFile(victim, []byte("root"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)
	dir := filepath.Join(base, "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustApply(t, dir,
		symEnt("s", victim), linkEnt("h", "s"), linkEnt("h2", "s"),
		symEnt("sd", outside), linkEnt("hd", "sd"),
		reg("h2", "mine"), // replaces the link, does not write through it
	)
	for _, rel := range []string{"h", "hd"} {
		st := lstat(t, filepath.Join(dir, rel))
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK || st.Nlink != 2 {
			t.Errorf("%s: mode %o nlink %d, want a second link of a symlink", rel, st.Mode, st.Nlink)
		}
	}
	if got := readFile(t, filepath.Join(dir, "h2")); got != "mine" {
		t.Errorf("h2 = %q", got)
	}
	if d := diffSnapshots(before, snapshot(t, outside)); d != "" {
		t.Errorf("outside the layer changed:\n%s", d)
	}
}

// Hard links share the inode of an earlier entry of the same layer; a
// later entry of the target's name replaces the name only.
func TestApplyHardlinkThenReplace(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, reg("a", "one"), linkEnt("b", "a"), reg("a", "two"), reg("c", "x"), linkEnt("c2", "c"), linkEnt("c3", "c2"))
	if got := readFile(t, filepath.Join(dir, "b")); got != "one" {
		t.Errorf("b = %q, want the first a", got)
	}
	if got := readFile(t, filepath.Join(dir, "a")); got != "two" {
		t.Errorf("a = %q, want the last entry", got)
	}
	if st := lstat(t, filepath.Join(dir, "c3")); st.Ino != lstat(t, filepath.Join(dir, "c")).Ino || st.Nlink != 3 {
		t.Errorf("c3 is not a link of c (nlink %d)", st.Nlink)
	}
}

func TestApplyLongNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("d", 200) + "/" + strings.Repeat("e", 250) + "/" + strings.Repeat("f", 255)
	// Deeper than PATH_MAX: every step is relative to an open directory.
	var deep strings.Builder
	for range 24 {
		deep.WriteString(strings.Repeat("x", 200) + "/")
	}
	deep.WriteString("leaf")
	mustApply(t, dir, reg(long, "long"), symEnt("ll", "/"+long), linkEnt("lh", long), reg(deep.String(), "deep"))
	if got := readFile(t, filepath.Join(dir, long)); got != "long" {
		t.Errorf("long = %q", got)
	}
	if got, err := os.Readlink(filepath.Join(dir, "ll")); err != nil || got != "/"+long {
		t.Errorf("ll -> %q, %v", got, err)
	}
	if got := readFile(t, filepath.Join(dir, "lh")); got != "long" {
		t.Errorf("lh = %q", got)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if b, err := root.ReadFile(deep.String()); err != nil || string(b) != "deep" {
		t.Errorf("deep = %q, %v", b, err)
	}

	if _, err := applyEnts(t, t.TempDir(), reg(strings.Repeat("n", 256), "")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("256-byte name: err = %v, want InvalidArgument", err)
	}
}

func TestApplyWhiteouts(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	st := mustApply(t, dir,
		dirEnt("etc"),
		reg("etc/.wh.passwd", ""),
		dirEnt("var"), reg("var/.wh..wh..opq", ""), reg("var/kept", "k"),
		reg("new/.wh..wh..opq", ""), // opaque marker of an unlisted directory
		reg(".wh..wh.aufs", ""), dirEnt(".wh..wh.plnk"), reg(".wh..wh.plnk/123.456", "x"),
	)
	if p := "etc/passwd"; !isWhiteoutFile(t, filepath.Join(dir, p)) {
		t.Errorf("%s is not a whiteout", p)
	}
	for _, p := range []string{"var", "new"} {
		if !isOpaque(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not opaque", p)
		}
	}
	if isOpaque(t, filepath.Join(dir, "etc")) {
		t.Error("etc became opaque")
	}
	if got := readFile(t, filepath.Join(dir, "var/kept")); got != "k" {
		t.Errorf("var/kept = %q", got)
	}
	for _, p := range []string{".wh..wh.aufs", ".wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("aufs metadata %s was unpacked", p)
		}
	}
	// etc, passwd, var, kept, new.
	if st.Inodes != 5 {
		t.Errorf("inodes = %d, want 5", st.Inodes)
	}
}

// A whiteout deletes from the layers below only, never this layer's own
// entry of the same name, wherever it stands in the tar (OCI image-spec,
// "Whiteouts"). A directory of this layer then hides the one below.
func TestApplyWhiteoutSameLayer(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	mustApply(t, dir,
		reg("f1", "mine"), reg(".wh.f1", ""), // file, then its whiteout
		reg(".wh.f2", ""), reg("f2", "mine"), // whiteout, then the file
		symEnt("s", "f1"), reg(".wh.s", ""),
		dirEnt("d1"), reg("d1/x", "1"), reg(".wh.d1", ""), // dir, then its whiteout
		reg(".wh.d2", ""), dirEnt("d2"), reg("d2/x", "2"), // whiteout, then the dir
		reg(".wh.d3", ""), reg("d3/x", "3"), // whiteout, then an implicit dir
		reg(".wh.w", ""), reg(".wh.w", ""), // a repeated whiteout
	)
	for p, want := range map[string]string{"f1": "mine", "f2": "mine", "d1/x": "1", "d2/x": "2", "d3/x": "3"} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "s")); err != nil || target != "f1" {
		t.Errorf("s -> %q, %v", target, err)
	}
	for _, p := range []string{"d1", "d2"} {
		if !isOpaque(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not opaque", p)
		}
	}
	if !isWhiteoutFile(t, filepath.Join(dir, "w")) {
		t.Error("w is not a whiteout")
	}
}

func TestApplyBadWhiteouts(t *testing.T) {
	for name, ents := range map[string][]tent{
		"empty name":     {reg("a/.wh.", "")},
		"dot":            {reg(".wh..", "")},
		"used as parent": {reg(".wh.x/y", "")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := applyEnts(t, t.TempDir(), ents...); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
}

func TestApplyOwnersXattrsDevices(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	owned := func(e tent) tent { e.Uid, e.Gid = 1234, 5678; return e }
	capValue := string([]byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) // cap_net_raw+ep
	mustApply(t, dir,
		owned(withMode(dirEnt("d"), 0o2750)),
		owned(withXattr(withXattr(withMode(reg("d/ping", "elf"), 0o4755), "security.capability", capValue), "user.note", "hi")),
		owned(symEnt("d/link", "ping")),
		withXattr(dirEnt("o"), "trusted.overlay.opaque", "y"),
		withXattr(symEnt("tl", "x"), "trusted.mark", "m"),
		owned(tent{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}),
		tent{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9}},
		tent{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o600}},
	)
	for _, p := range []string{"d", "d/ping", "d/link", "dev/null"} {
		if st := lstat(t, filepath.Join(dir, p)); st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s owner = %d:%d", p, st.Uid, st.Gid)
		}
	}
	// The mode survives the chown that would clear setuid/setgid.
	if m := lstat(t, filepath.Join(dir, "d/ping")).Mode & 0o7777; m != 0o4755 {
		t.Errorf("d/ping mode = %o", m)
	}
	if m := lstat(t, filepath.Join(dir, "d")).Mode & 0o7777; m != 0o2750 {
		t.Errorf("d mode = %o", m)
	}
	getx := func(path, name string) string {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(dir, path), name, buf)
		if err != nil {
			t.Errorf("%s %s: %v", path, name, err)
			return ""
		}
		return string(buf[:n])
	}
	// The capability survives both the chown and the write of the content.
	if got := getx("d/ping", "security.capability"); got != capValue {
		t.Errorf("security.capability = %x", got)
	}
	if got := getx("d/ping", "user.note"); got != "hi" {
		t.Errorf("user.note = %q", got)
	}
	if got := getx("o", overlayOpaque); got != "y" {
		t.Errorf("opaque = %q", got)
	}
	if got := getx("tl", "trusted.mark"); got != "m" {
		t.Errorf("symlink trusted.mark = %q", got)
	}
	for p, want := range map[string]struct {
		typ  uint32
		mode uint32
		rdev uint64
	}{
		"dev/null":  {syscall.S_IFCHR, 0o666, unix.Mkdev(1, 3)},
		"dev/loop9": {syscall.S_IFBLK, 0o660, unix.Mkdev(7, 9)},
		"dev/fifo":  {syscall.S_IFIFO, 0o600, 0},
	} {
		st := lstat(t, filepath.Join(dir, p))
		if st.Mode&syscall.S_IFMT != want.typ || st.Mode&0o7777 != want.mode || st.Rdev != want.rdev {
			t.Errorf("%s: mode %o rdev %d, want %o|%o rdev %d", p, st.Mode, st.Rdev, want.typ, want.mode, want.rdev)
		}
	}
}

func TestApplyUserXattrWithoutRoot(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, withXattr(reg("f", "x"), "user.k", "v"), withXattr(symEnt("s", "f"), "user.k", "v"))
	buf := make([]byte, 8)
	n, err := unix.Getxattr(filepath.Join(dir, "f"), "user.k", buf)
	if err == unix.EOPNOTSUPP {
		t.Skip("no user xattrs on this filesystem")
	}
	if err != nil || string(buf[:n]) != "v" {
		t.Errorf("user.k = %q, %v", buf[:n], err)
	}
}

func TestApplyRejectsOverlayXattrs(t *testing.T) {
	for name, e := range map[string]tent{
		"redirect":        withXattr(dirEnt("d"), "trusted.overlay.redirect", "/etc"),
		"metacopy":        withXattr(reg("f", ""), "trusted.overlay.metacopy", ""),
		"opaque on file":  withXattr(reg("f", ""), "trusted.overlay.opaque", "y"),
		"opaque x":        withXattr(dirEnt("d"), "trusted.overlay.opaque", "x"),
		"whiteout xattr":  withXattr(reg("f", ""), "trusted.overlay.whiteout", ""),
		"empty attr name": withXattr(reg("f", ""), "", "v"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := applyEnts(t, dir, e); !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("rejected entry was created")
			}
		})
	}
}

func TestApplyMalformed(t *testing.T) {
	valid := buildTar(t, reg("a", strings.Repeat("x", 2000)))
	for name, tc := range map[string]struct {
		data []byte
		kind error
	}{
		"garbage header":             {bytes.Repeat([]byte{0xff}, 1024), errdefs.ErrInvalidArgument},
		"bad uid":                    {buildTar(t, tent{Header: tar.Header{Typeflag: tar.TypeReg, Name: "f", Uid: 1 << 33}}), errdefs.ErrInvalidArgument},
		"unknown type":               {buildTar(t, tent{Header: tar.Header{Typeflag: 'Z', Name: "f"}}), errdefs.ErrInvalidArgument},
		"root as file":               {buildTar(t, reg(".", "")), errdefs.ErrInvalidArgument},
		"truncated":                  {valid[:1024], io.ErrUnexpectedEOF},
		"truncated kind":             {valid[:1024], errdefs.ErrInvalidArgument},
		"sparse data beyond its map": {rawSparseTar("s", 100, "1\n0\n2\n", "abcd"), errdefs.ErrInvalidArgument},
		"sparse map beyond its data": {rawSparseTar("s", 100, "1\n0\n8\n", "ab"), errdefs.ErrInvalidArgument},
		"sparse map beyond its size": {rawSparseTar("s", 4, "1\n2\n8\n", "abcdefgh"), errdefs.ErrInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tc.data))
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
		})
	}
	// A failing stream is not the archive's fault: its error passes
	// unchanged, in a header or in content.
	boom := errors.New("connection reset")
	for _, n := range []int{100, 600} {
		_, err := Apply(context.Background(), t.TempDir(), io.MultiReader(bytes.NewReader(valid[:n]), iotest.ErrReader(boom)))
		if !errors.Is(err, boom) || errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("stream failing at %d: err = %v, want %v without a kind", n, err, boom)
		}
	}
	if _, err := Apply(context.Background(), filepath.Join(t.TempDir(), "absent"), bytes.NewReader(valid)); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing dir: err = %v, want NotFound", err)
	}
}

func TestApplySparse(t *testing.T) {
	const size = 64 << 20
	data := sparseTar("s", size, map[int64]string{0: "head", 40 << 20: "middle"}, []int64{0, 40 << 20})
	dir := t.TempDir()
	st, err := Apply(context.Background(), dir, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if fi.Size() != size || st.Bytes != size {
		t.Fatalf("size = %d, stats %+v, want %d", fi.Size(), st, size)
	}
	buf := make([]byte, 6)
	if _, err := f.ReadAt(buf, 40<<20); err != nil || string(buf) != "middle" {
		t.Errorf("at 40MiB: %q, %v", buf, err)
	}
	if _, err := f.ReadAt(buf[:4], 0); err != nil || string(buf[:4]) != "head" {
		t.Errorf("at 0: %q, %v", buf[:4], err)
	}
	// Two 1 MiB chunks hold data; the other 62 MiB must be holes.
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 4<<20 {
		t.Errorf("sparse file uses %d bytes on disk", used)
	}
}

func TestApplyCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	if _, err := Apply(ctx, dir, bytes.NewReader(buildTar(t, reg("f", "x")))); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("cancelled Apply wrote %d entries", len(ents))
	}

	// Cancellation between entries: the reader cancels once the first
	// entry has been consumed; the second must not be written.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	data := buildTar(t, reg("first", strings.Repeat("a", 600)), reg("second", "b"))
	r := &cancelAfter{r: bytes.NewReader(data), n: 512 + 1024, cancel: cancel}
	if _, err := Apply(ctx, dir, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "second")); !os.IsNotExist(err) {
		t.Errorf("entry after cancellation was written")
	}
}

// A sparse entry can declare far more holes than could ever be read; the
// tar reader makes them up without touching the stream, so cancellation
// must reach into the copy.
func TestApplySparseCancel(t *testing.T) {
	dir := t.TempDir()
	data := sparseTar("huge", 1<<55, map[int64]string{0: "x"}, []int64{0})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Apply(ctx, dir, bytes.NewReader(data))
		done <- err
	}()
	// Cancel once the copy is under way, past the whole input.
	waitForFile(t, filepath.Join(dir, "huge"), done)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Apply ignores cancellation inside a sparse entry")
	}
}

// waitForFile polls for path until it exists, failing if Apply returns first.
func waitForFile(t *testing.T, path string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Apply returned %v before %s appeared", err, path)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(time.Millisecond)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	if len(p) > c.n && c.n > 0 {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a/b":      "a/b",
		"/a/b/":    "a/b",
		"//a//b":   "a/b",
		"./a/./b":  "a/b",
		"./":       ".",
		"/":        ".",
		"a/...":    "a/...",
		"a/..b/c":  "a/..b/c",
		".wh..opq": ".wh..opq",
	} {
		if got, err := cleanName(in); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "../a", "a/..", "a/../b", "/..", "a\x00b"} {
		if _, err := cleanName(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("cleanName(%q): err = %v, want InvalidArgument", in, err)
		}
	}
}

// Entries owned by the daemon's own ids skip chown, but only where the new
// entry really has them: under a setgid directory of another group the
// kernel hands out that group, so root:root entries there are chowned back;
// a directory the layer meets again keeps no owner from before.
func TestApplyOwnersUnderSetgidAndReplacedDirs(t *testing.T) {
	requireRoot(t)
	if os.Getegid() != 0 {
		t.Skip("needs egid 0")
	}
	dir := t.TempDir()
	group := func(e tent, gid int) tent { e.Gid = gid; return e }
	mustApply(t, dir,
		group(withMode(dirEnt("sg"), 0o2775), 4321),
		reg("sg/f", "x"),                  // 0:0 wanted, 0:4321 by inheritance
		symEnt("sg/l", "f"),               // likewise, by name
		dirEnt("sg/sub"),                  // inherits group and setgid
		reg("plain", "y"),                 // 0:0 as created
		group(dirEnt("again"), 777),       // first 0:777 ...
		withMode(dirEnt("again"), 0o750),  // ... then 0:0 again
		group(reg("sg/other", "z"), 4321), // wants the inherited group
		tent{Header: tar.Header{Typeflag: tar.TypeReg, Name: "mine", Uid: 55, Gid: 66, Mode: 0o600}, Body: "m"},
	)
	want := map[string][2]uint32{
		"sg": {0, 4321}, "sg/f": {0, 0}, "sg/l": {0, 0}, "sg/sub": {0, 0}, "plain": {0, 0},
		"again": {0, 0}, "sg/other": {0, 4321}, "mine": {55, 66},
	}
	for p, ids := range want {
		if st := lstat(t, filepath.Join(dir, p)); st.Uid != ids[0] || st.Gid != ids[1] {
			t.Errorf("%s owner = %d:%d, want %d:%d", p, st.Uid, st.Gid, ids[0], ids[1])
		}
	}
	// The tar's modes win over what the setgid parent passed down.
	if m := lstat(t, filepath.Join(dir, "sg/sub")).Mode & 0o7777; m != 0o755 {
		t.Errorf("sg/sub mode = %o, want 755", m)
	}
	if m := lstat(t, filepath.Join(dir, "again")).Mode & 0o7777; m != 0o750 {
		t.Errorf("again mode = %o, want 750", m)
	}
}
