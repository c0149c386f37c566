package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// planDebian keeps files under /usr only, resolves directory symlinks,
// drops translations and gives a file listed twice to the first layer.
func TestPlanDebian(t *testing.T) {
	if _, err := os.Lstat("/usr/bin/env"); err != nil {
		t.Skip("no /usr/bin/env here")
	}
	info := t.TempDir()
	write := func(pkg string, lines ...string) {
		if err := os.WriteFile(filepath.Join(info, pkg+".list"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, net := debianLayers[0].packages[0], debianLayers[1].packages[0]
	write(base, "/.", "/usr", "/usr/bin", "/usr/bin/env", "/etc/passwd", "/usr/share/locale/xx/none.mo", "/usr/bin/absent-here")
	write(net, "/usr/bin/env")
	plan, missing, err := planDebian(info)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(debianLayers) {
		t.Fatalf("%d layers, want %d", len(plan), len(debianLayers))
	}
	if len(plan[0]) != 1 || plan[0][0].rel != "usr/bin/env" || plan[0][0].host != "/usr/bin/env" {
		t.Errorf("layer 0 = %+v, want usr/bin/env alone", plan[0])
	}
	if len(plan[1]) != 0 {
		t.Errorf("layer 1 = %+v, want nothing (its one file is in layer 0)", plan[1])
	}
	if slices.Contains(missing, base) || slices.Contains(missing, net) || !slices.Contains(missing, debianLayers[4].packages[0]) {
		t.Errorf("missing = %v", missing)
	}
}

// debianEntries writes parents first, keeps modes (setuid included),
// owners and symlink targets, and turns a second name of an inode into a
// hard link to the first.
func TestDebianEntries(t *testing.T) {
	dir := t.TempDir()
	a, b, l := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "l")
	if err := os.WriteFile(a, []byte("hello"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, b); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", l); err != nil {
		t.Fatal(err)
	}
	files := []debianFile{{"usr/lib/x/a", a}, {"usr/lib/x/b", b}, {"usr/lib/x/l", l}}
	entries, content, err := debianEntries(1, files)
	if err != nil {
		t.Fatal(err)
	}
	if content != 5 {
		t.Errorf("content %d bytes, want 5 (the link adds none)", content)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	want := []string{"usr/", "usr/lib/", "usr/lib/x/", "usr/lib/x/a", "usr/lib/x/b", "usr/lib/x/l"}
	if !slices.Equal(names, want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	if e := entries[3]; e.Mode != 0o4755 || string(e.Content) != "hello" {
		t.Errorf("file entry mode %o content %q", e.Mode, e.Content)
	}
	if e := entries[4]; e.Type != tar.TypeLink || e.Linkname != "usr/lib/x/a" {
		t.Errorf("second name: type %q link %q, want a hard link to usr/lib/x/a", e.Type, e.Linkname)
	}
	if e := entries[5]; e.Type != tar.TypeSymlink || e.Linkname != "a" {
		t.Errorf("symlink: type %q target %q", e.Type, e.Linkname)
	}
}
