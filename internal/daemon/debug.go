package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/cri"
)

// DebugAddrEnv names the environment variable that makes the daemon serve
// Go's pprof handlers (/debug/pprof/: goroutines, heap, CPU profiles) for
// benchmarks and debugging: "unix:PATH" (mode 0660, like the CRI socket) or
// a loopback "HOST:PORT". Unset, nothing listens. It is no config key: a
// profile shows the daemon's memory, so it is never on by default.
const DebugAddrEnv = "CRADLE_DEBUG_ADDR"

// debugListen parses a DebugAddrEnv value into a listener: a unix socket,
// or TCP on a loopback address only.
func debugListen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("%s=%s: want unix:/absolute/path", DebugAddrEnv, addr)
		}
		return listenSocket(path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%s: want unix:PATH or HOST:PORT: %w", DebugAddrEnv, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%s: the pprof endpoint shows the daemon's memory; only loopback addresses or unix sockets", DebugAddrEnv, addr)
	}
	return net.Listen("tcp", addr)
}

// serveDebug serves pprof on addr until the returned stop is called, and
// the CRI calls' server times (times, if not nil) at /debug/cri/times as
// JSON (cri.RPCTimesSnapshot).
func serveDebug(addr string, log *slog.Logger, times *cri.RPCTimes) (stop func(), err error) {
	l, err := debugListen(addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if times != nil {
		mux.HandleFunc("/debug/cri/times", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = times.WriteJSON(w)
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug endpoint stopped", "err", err)
		}
	}()
	log.Info("serving pprof", "address", l.Addr().String(), "env", DebugAddrEnv)
	return func() {
		_ = srv.Close()
		if path, ok := strings.CutPrefix(addr, "unix:"); ok {
			_ = os.Remove(path)
		}
	}, nil
}
