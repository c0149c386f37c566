package daemon

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// withUmask runs f under umask mask. Not parallel: the umask is per process.
func withUmask(mask int, f func()) {
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	f()
}

func TestSocketIs0660WhateverTheUmask(t *testing.T) {
	for _, mask := range []int{0o000, 0o022, 0o077} {
		path := filepath.Join(t.TempDir(), "new", "dir", "cradle.sock")
		var (
			l   net.Listener
			err error
		)
		withUmask(mask, func() { l, err = listenSocket(path) })
		if err != nil {
			t.Fatalf("umask %03o: %v", mask, err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
			t.Errorf("umask %03o: socket mode = %v, want 0660", mask, fi.Mode())
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("umask %03o: dial: %v", mask, err)
		}
		c.Close()
		l.Close()
	}
}

// Under a lax umask the socket file must not be connectable by others even
// between bind and the chmod: it is born 0660.
func TestSocketIsBornWithoutOtherAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cradle.sock")
	var (
		l   net.Listener
		err error
	)
	withUmask(0, func() { l, err = bindSocket(path) })
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 || perm&^0o660 != 0 {
		t.Errorf("socket born with mode %v under umask 0, want at most 0660", perm)
	}
}

func TestStaleSocketReplacedLiveOrForeignFileKept(t *testing.T) {
	dir := t.TempDir()

	// A crashed daemon's socket: nobody listens.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = listenSocket(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	// Replaced means ours now: it accepts.
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}

	// A live socket is not stolen, and stays usable.
	if _, err := listenSocket(stale); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second listen on a live socket: %v", err)
	}
	if c, err := net.Dial("unix", stale); err != nil {
		t.Errorf("live socket broken by the refused listen: %v", err)
	} else {
		c.Close()
	}
	l.Close()

	// A regular file at the path is never deleted.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "data" {
		t.Error("the regular file was replaced")
	}
}
