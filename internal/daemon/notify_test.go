package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// notifyListener is what systemd listens on: a unixgram socket whose
// datagrams the test reads in order.
func notifyListener(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
		return ""
	}
}

func TestNotifierTakesTheEnvironmentAndSends(t *testing.T) {
	path, ch := notifyListener(t)
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n := takeNotifyEnv(slog.New(slog.DiscardHandler))
	for _, v := range []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"} {
		if _, set := os.LookupEnv(v); set {
			t.Errorf("%s is still in the environment: runc would see it", v)
		}
	}
	if n.socket != path || n.watchdog != 3*time.Second {
		t.Fatalf("notifier = %+v", n)
	}
	n.send("READY=1")
	if m := next(t, ch); m != "READY=1" {
		t.Errorf("got %q", m)
	}
	n.reloading()
	m := next(t, ch)
	lines := strings.Split(m, "\n")
	if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("reload notification = %q", m)
	}
	if usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC = %q", lines[1])
	}
}

// A watchdog meant for another process (WATCHDOG_PID) is not ours, and
// without NOTIFY_SOCKET nothing is sent anywhere.
func TestNotifierIgnoresOthersWatchdog(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "1")
	n := takeNotifyEnv(slog.New(slog.DiscardHandler))
	if n.watchdog != 0 {
		t.Errorf("watchdog of PID 1 taken as ours: %v", n.watchdog)
	}
	n.send("READY=1") // no socket: a no-op, no panic
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.runWatchdog(ctx, func(context.Context) error { t.Error("health checked without a watchdog"); return nil })
}

// WATCHDOG=1 goes out only while the health check passes.
func TestWatchdogPingsOnlyWhileHealthy(t *testing.T) {
	path, ch := notifyListener(t)
	n := &notifier{socket: path, watchdog: 40 * time.Millisecond, log: slog.New(slog.DiscardHandler)}
	var healthy, checks atomic.Int32
	healthy.Store(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.runWatchdog(ctx, func(context.Context) error {
			checks.Add(1)
			if healthy.Load() == 1 {
				return nil
			}
			return errors.New("wedged")
		})
		close(done)
	}()
	if m := next(t, ch); m != "WATCHDOG=1" {
		t.Fatalf("got %q", m)
	}
	healthy.Store(0)
	// Drain what was sent before the switch, then several checks fail:
	// no ping may arrive during them.
	for c := checks.Load(); checks.Load() < c+2; {
		time.Sleep(5 * time.Millisecond)
	}
	for len(ch) > 0 {
		<-ch
	}
	base := checks.Load()
	for checks.Load() < base+3 {
		time.Sleep(5 * time.Millisecond)
	}
	if len(ch) > 0 {
		t.Fatalf("pinged while the health check fails: %q", <-ch)
	}
	healthy.Store(1)
	if m := next(t, ch); m != "WATCHDOG=1" {
		t.Fatalf("got %q after recovery", m)
	}
	cancel()
	<-done
}
