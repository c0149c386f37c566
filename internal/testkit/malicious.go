package testkit

import "archive/tar"

// EscapeMarker is the content of every file the malicious layers try to
// plant outside the root, so a test can search for it.
const EscapeMarker = "testkit: escaped the layer root\n"

// MaliciousLayers returns hostile layer contents by name. Each tries to
// create or link a file outside the directory it is applied to; a safe
// applier must reject the layer (or at least confine every write to the
// root) and leave nothing outside. Relative escapes climb at most three
// levels, so applying under t.TempDir()/a/b/root keeps a broken applier's
// damage inside the test's directory; "symlink-abs-escape" aims at the host's
// /tmp/testkit-escape, which a test should check for and remove.
//
//	dotdot              ../escape
//	absolute-dotdot     /../../escape
//	nested-dotdot       a/../../escape
//	symlink-escape      link -> ../.. (a directory symlink), then link/escape
//	symlink-abs-escape  link -> /tmp, then link/testkit-escape
//	hardlink-escape     passwd hard-linked to ../../etc/passwd
func MaliciousLayers() map[string][]Entry {
	file := func(name string) Entry { return Entry{Name: name, Content: []byte(EscapeMarker)} }
	return map[string][]Entry{
		"dotdot":          {file("../escape")},
		"absolute-dotdot": {file("/../../escape")},
		"nested-dotdot":   {Dir("a/"), file("a/../../escape")},
		"symlink-escape": {
			Symlink("link", "../.."),
			file("link/escape"),
		},
		"symlink-abs-escape": {
			Symlink("link", "/tmp"),
			file("link/testkit-escape"),
		},
		"hardlink-escape": {
			{Name: "passwd", Type: tar.TypeLink, Linkname: "../../etc/passwd"},
		},
	}
}
