package oci

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// An Offline runtime reads conmon's files without starting anything:
// state IDs come from ctr/ and exits/, and attach links are matched to IDs
// through their (hashed) names, since a pod init's link points at
// <pod>/init, not at a dir named after its ID.
func TestOfflineStateAndAttachLinks(t *testing.T) {
	dir := t.TempDir()
	r := Offline(Config{Handler: "runc", RuntimePath: "/bin/false", RuntimeRoot: filepath.Join(dir, "root"), StateDir: dir})
	long, short, gone := strings.Repeat("a", 64), "short1", strings.Repeat("b", 64)
	for _, p := range []string{filepath.Join(dir, "ctr", long), filepath.Join(dir, "exits"), filepath.Join(dir, "attach")} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "exits", short), []byte("0"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{long, short, gone} {
		if err := os.Symlink("/pods/x/init", r.attachLink(id)); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := r.StateIDs()
	if err != nil || !slices.Equal(sorted(ids), sorted([]string{long, short})) {
		t.Fatalf("StateIDs = %v, %v", ids, err)
	}
	stale, err := r.StaleAttachLinks(ids)
	if err != nil || !slices.Equal(stale, []string{r.attachLink(gone)}) {
		t.Fatalf("StaleAttachLinks = %v, %v; want the link of %s", stale, err, gone)
	}
	// Nothing lists: the runtime root does not exist, so the binary (which
	// would fail) is not even run.
	if list, err := r.RuntimeList(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("RuntimeList = %v, %v", list, err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
