package netns

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestWorkerThreadIsNeverTheMainThread(t *testing.T) {
	pid := unix.Getpid()
	for range 200 {
		var tid int
		onWorkerThread(func() bool { tid = unix.Gettid(); return true })
		if tid == pid {
			t.Fatal("namespace work ran on the main thread")
		}
	}
}

func TestDoEntersAndReturns(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	pinned, host := nsIno(t, p.Path(Net)), nsIno(t, "/proc/self/ns/net")

	// Many concurrent calls: each sees the pinned namespace, and afterwards
	// no thread is left in it (every one went back or was discarded).
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			errs <- Do(p.Path(Net), func() error {
				if got := nsIno(t, "/proc/thread-self/ns/net"); got != pinned {
					return errors.New("fn did not run in the pinned netns")
				}
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "no thread is left in the pinned netns", func() bool {
		return len(threadsIn(t, Net, pinned)) == 0
	})
	if got := nsIno(t, "/proc/thread-self/ns/net"); got != host {
		t.Fatal("the caller's thread changed netns")
	}

	sentinel := errors.New("from fn")
	if err := Do(p.Path(Net), func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
}

func TestDoReraisesPanicAfterReturning(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	pinned := nsIno(t, p.Path(Net))
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want boom", r)
			}
		}()
		Do(p.Path(Net), func() error { panic("boom") })
		t.Fatal("Do returned after a panic")
	}()
	eventually(t, "no thread is left in the pinned netns", func() bool {
		return len(threadsIn(t, Net, pinned)) == 0
	})
}

func TestDoDiscardsThreadWhenReturnFails(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	pinned := nsIno(t, p.Path(Net))
	calls := 0
	setns = func(fd, nstype int) error {
		calls++
		if calls == 2 {
			return unix.EPERM // the return trip
		}
		return unix.Setns(fd, nstype)
	}
	t.Cleanup(func() { setns = unix.Setns })

	var tid int
	err = Do(p.Path(Net), func() error { tid = unix.Gettid(); return nil })
	if err == nil || !strings.Contains(err.Error(), "thread discarded") {
		t.Fatalf("Do = %v, want the failed return reported", err)
	}
	// The thread really stayed in the pod netns, and the runtime ends it.
	eventually(t, "the dirty thread is gone", func() bool {
		_, err := os.Stat(filepath.Join("/proc/self/task", strconv.Itoa(tid)))
		return os.IsNotExist(err)
	})
	eventually(t, "no thread is left in the pinned netns", func() bool {
		return len(threadsIn(t, Net, pinned)) == 0
	})
}

func TestDoErrors(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), UTS)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, Do(filepath.Join(t.TempDir(), "missing"), func() error { return nil }), errdefs.ErrNotFound)
	ran := false
	wantKind(t, Do(p.Path(UTS), func() error { ran = true; return nil }), errdefs.ErrInvalidArgument)
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wantKind(t, Do(fifo, func() error { ran = true; return nil }), errdefs.ErrInvalidArgument)
	pn, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	if err := Do(pn.Path(Net), func() error { runtime.Goexit(); return nil }); err == nil || !strings.Contains(err.Error(), "exited its goroutine") {
		t.Fatalf("Do with a Goexit in fn = %v", err)
	}
	plain := filepath.Join(t.TempDir(), "plain")
	touch(t, plain)
	wantKind(t, Do(plain, func() error { ran = true; return nil }), errdefs.ErrInvalidArgument)
	if ran {
		t.Fatal("fn ran although the namespace could not be entered")
	}
}

func TestSetHostname(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), UTS)
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name := "pod-" + strings.Repeat("x", 60) // 64 bytes: the limit
	if err := SetHostname(p.Path(UTS), name); err != nil {
		t.Fatal(err)
	}
	var inside string
	if err := do(p.Path(UTS), UTS, func() (err error) {
		var u unix.Utsname
		err = unix.Uname(&u)
		inside = unix.ByteSliceToString(u.Nodename[:])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != name {
		t.Fatalf("hostname inside = %q, want %q", inside, name)
	}
	if now, _ := os.Hostname(); now != host {
		t.Fatalf("host hostname changed from %q to %q", host, now)
	}

	for _, bad := range []string{"", name + "y", "a\x00b"} {
		wantKind(t, SetHostname(p.Path(UTS), bad), errdefs.ErrInvalidArgument)
	}
	pn, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, SetHostname(pn.Path(Net), "x"), errdefs.ErrInvalidArgument)
}

func TestSysctl(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	const file = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
	read := func(inNetns bool) string {
		t.Helper()
		var b []byte
		rd := func() (err error) { b, err = os.ReadFile(file); return err }
		if inNetns {
			err = Do(p.Path(Net), rd)
		} else {
			err = rd()
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	host := read(false)
	want := "80"
	if host == want {
		want = "81"
	}
	if err := Sysctl(p.Path(Net), "net.ipv4.ip_unprivileged_port_start", want); err != nil {
		t.Fatal(err)
	}
	if got := read(true); got != want {
		t.Fatalf("inside = %q, want %q", got, want)
	}
	if got := read(false); got != host {
		t.Fatalf("host value changed: %q -> %q", host, got)
	}
	// Slash form names the same file.
	if err := Sysctl(p.Path(Net), "net/ipv4/ip_unprivileged_port_start", "1024"); err != nil {
		t.Fatal(err)
	}
	if got := read(true); got != "1024" {
		t.Fatalf("after slash form: %q", got)
	}

	wantKind(t, Sysctl(p.Path(Net), "kernel.hostname", "x"), errdefs.ErrInvalidArgument)
	wantKind(t, Sysctl(p.Path(Net), "net..ipv4", "1"), errdefs.ErrInvalidArgument)
	wantKind(t, Sysctl(p.Path(Net), "net/ipv4/../../kernel/hostname", "x"), errdefs.ErrInvalidArgument)
	wantKind(t, Sysctl(p.Path(Net), "net.ipv4.no_such_knob", "1"), errdefs.ErrNotFound)
	wantKind(t, Sysctl(p.Path(Net), "net.ipv4.ip_unprivileged_port_start", "many"), errdefs.ErrInvalidArgument)
	wantKind(t, Sysctl(p.Path(Net), "net.ipv4.ip_forward", "1\n0"), errdefs.ErrInvalidArgument)
}

func TestSysctlFile(t *testing.T) {
	cases := map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net.ipv4.conf.eth0/100.forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"net.ipv6.conf.all.disable_ipv6":    "/proc/sys/net/ipv6/conf/all/disable_ipv6",
	}
	for key, want := range cases {
		got, err := sysctlFile(key)
		if err != nil || got != want {
			t.Errorf("sysctlFile(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, bad := range []string{"", "net", "kernel.shmmax", "net.", "net/./ipv4", "net/../kernel/x", "net.ipv4..x", "vm/net/x"} {
		if _, err := sysctlFile(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("sysctlFile(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}
