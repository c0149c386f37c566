package netns

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates namespaces and mounts")
	}
}

// pinDir returns a fresh pin directory path (not created) and makes sure it
// is unpinned when the test ends, whatever the test did.
func pinDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pod", "ns")
	t.Cleanup(func() {
		if err := Unpin(dir); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return dir
}

// nsIno is the inode of the namespace a path refers to.
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

type mountEntry struct {
	point, fstype, propagation string
}

// mounts parses a mountinfo file (pid "self" or a number).
func mounts(t *testing.T, pid string) []mountEntry {
	t.Helper()
	f, err := os.Open("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, fl := range fields {
			if fl == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) {
			t.Fatalf("bad mountinfo line %q", sc.Text())
		}
		point, err := strconv.Unquote(`"` + strings.ReplaceAll(fields[4], `"`, `\"`) + `"`)
		if err != nil {
			point = fields[4]
		}
		out = append(out, mountEntry{point: point, fstype: fields[sep+1], propagation: strings.Join(fields[6:sep], " ")})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// mountsUnder lists mount points at or below dir in pid's mount namespace.
func mountsUnder(t *testing.T, pid, dir string) []mountEntry {
	t.Helper()
	var out []mountEntry
	for _, m := range mounts(t, pid) {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m)
		}
	}
	return out
}

// threadsIn lists this process's threads whose namespace of kind is ino.
func threadsIn(t *testing.T, kind Kind, ino uint64) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/self/task/%s/ns/%s", task.Name(), kind), &st) != nil {
			continue // the thread ended meanwhile
		}
		if st.Ino == ino {
			out = append(out, task.Name())
		}
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q: want kind %v (code %v)", err, kind, errdefs.Code(err))
	}
}
