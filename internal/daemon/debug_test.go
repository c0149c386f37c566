package daemon

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestDebugListenRefusesWhatIsNotLoopbackOrUnix(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.0.0.1:6060", "unix:relative.sock", "nonsense"} {
		if l, err := debugListen(addr); err == nil {
			l.Close()
			t.Errorf("debugListen(%q) accepted it", addr)
		}
	}
	l, err := debugListen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	l.Close()
}

func TestServeDebugAnswersGoroutineProfileOnUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "debug.sock")
	stop, err := serveDebug("unix:"+sock, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://cradle/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, "goroutine profile: total ") {
		t.Fatalf("status %s, first line %q", resp.Status, line)
	}
}
