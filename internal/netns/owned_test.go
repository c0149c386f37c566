package netns

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// holder starts a process in new network and UTS namespaces.
func holder(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWUTS, Pdeathsig: unix.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestPinFromKeepsAProcessesNamespaces(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	cmd := holder(t)
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/"
	wantNet, wantUTS := nsIno(t, proc+"net"), nsIno(t, proc+"uts")

	p, err := PinFrom(dir, cmd.Process.Pid, Net, UTS)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if nsIno(t, p.Path(Net)) != wantNet || nsIno(t, p.Path(UTS)) != wantUTS {
		t.Fatal("pins do not name the process's namespaces")
	}
	if p.Path(IPC) != "" {
		t.Errorf("IPC reported pinned: %q", p.Path(IPC))
	}
	// lo is up, as with Pin.
	err = Do(p.Path(Net), func() error {
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return err
		}
		if ifr.Uint16()&unix.IFF_UP == 0 {
			return errors.New("lo is down")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// A live pin is not stacked over.
	if _, err := PinFrom(dir, os.Getpid(), Net); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("PinFrom over a live pin = %v", err)
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, "self", dir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

func TestPinFromFailuresLeaveNothing(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	for name, err := range map[string]error{
		"pid 0":        func() error { _, err := PinFrom(dir, 0, Net); return err }(),
		"no kinds":     func() error { _, err := PinFrom(dir, os.Getpid()); return err }(),
		"unknown kind": func() error { _, err := PinFrom(dir, os.Getpid(), Kind("pid")); return err }(),
		"twice":        func() error { _, err := PinFrom(dir, os.Getpid(), Net, Net); return err }(),
		"relative dir": func() error { _, err := PinFrom("ns", os.Getpid(), Net); return err }(),
	} {
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	// A process that is gone: the bind fails and PinFrom undoes itself.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := PinFrom(dir, cmd.Process.Pid, Net, UTS); err == nil {
		t.Fatal("PinFrom of a dead process succeeded")
	}
	if m := mountsUnder(t, "self", dir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir left: %v", err)
	}
}
