package daemon

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRootLockIsExclusiveAndNamesTheHolder(t *testing.T) {
	root := t.TempDir()
	first, err := lockRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := os.ReadFile(filepath.Join(root, "cradle.lock"))
	if strings.TrimSpace(string(pid)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", pid)
	}
	// flock conflicts between open files, so a second lock in this process
	// stands in for a second daemon.
	if _, err := lockRoot(root); err == nil {
		t.Fatal("second lock on the same root succeeded")
	} else if msg := err.Error(); !strings.Contains(msg, "another cradle daemon (pid "+strconv.Itoa(os.Getpid())+")") || !strings.Contains(msg, root) {
		t.Errorf("refusal does not name the holder and root: %v", err)
	}
	first.release()
	second, err := lockRoot(root)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	second.release()
}

func TestStateLockRefusesASecondHolder(t *testing.T) {
	dir := t.TempDir()
	root, err := lockRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.release()
	state := t.TempDir()
	first, err := lockState(state)
	if err != nil {
		t.Fatal(err)
	}
	defer first.release()
	if _, err := lockState(state); err == nil || !strings.Contains(err.Error(), "state dir "+state) {
		t.Errorf("second lock on the state dir: %v", err)
	}
}
