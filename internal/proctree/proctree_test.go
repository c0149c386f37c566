package proctree

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is a child subreaper, like the daemon: what a killed
// command orphans comes to it.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// A shell script with children in its group, and one that left the group
// (setsid), is killed whole; every child is reaped, none stays a zombie.
func TestKillReapsOrphanedChildren(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	marker := fmt.Sprintf("3599.%d", os.Getpid())
	cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep %s & setsid sleep %s & sleep %s; exit 1", marker, marker, marker))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shell and its three sleeps", func() bool { return len(mentioning(marker)) == 4 })
	if err := Kill(cmd.Process); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Error("the killed shell exited 0")
	}
	waitFor(t, "every sleep to be gone and reaped", func() bool {
		return len(mentioning(marker)) == 0 && len(zombieChildren()) == 0
	})
}

// Killing a command that already exited is no error.
func TestKillExited(t *testing.T) {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := Kill(cmd.Process); err != nil {
		t.Errorf("Kill of an exited command: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (left: %v, zombies: %v)", what, mentioning("3599."), zombieChildren())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mentioning lists processes (zombies included) whose command line names s.
func mentioning(s string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && strings.Contains(string(b), s) {
			out = append(out, pid)
		}
	}
	return out
}

func zombieChildren() []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}
