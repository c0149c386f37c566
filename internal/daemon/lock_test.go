package daemon

import (
	"os"
	"os/exec"
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

// A killed daemon keeps its lock until the kernel has torn it down: the
// next one waits for that when the pid in the lock file is gone, instead of
// failing a restart.
func TestLockWaitsForADeadHolder(t *testing.T) {
	root := t.TempDir()
	first, err := lockRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cradle.lock"), []byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		<-released
		first.release()
	}()
	close(released)
	second, err := lockRoot(root)
	if err != nil {
		t.Fatalf("lock held by a dead pid, released meanwhile: %v", err)
	}
	second.release()
}
