package testkit

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Fault is middleware around the registry's handler (auth included): it sees
// every client request and may answer it itself, pass it on, or pass it on
// with a wrapped ResponseWriter to tamper with the real response. Install one
// with Registry.SetFault; combine several with Chain.
type Fault func(next http.Handler) http.Handler

// FaultFunc adapts a function that answers some requests itself (returning
// true) and lets the others through.
func FaultFunc(fn func(w http.ResponseWriter, req *http.Request) (handled bool)) Fault {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !fn(w, req) {
				next.ServeHTTP(w, req)
			}
		})
	}
}

// Chain applies faults in order: the first sees each request first.
func Chain(faults ...Fault) Fault {
	return func(next http.Handler) http.Handler {
		for i := len(faults) - 1; i >= 0; i-- {
			if faults[i] != nil {
				next = faults[i](next)
			}
		}
		return next
	}
}

// FailStatus answers every request whose path contains pathSubstr with code
// and a registry-style JSON error.
func FailStatus(pathSubstr string, code int) Fault {
	return FaultFunc(func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.Contains(req.URL.Path, pathSubstr) {
			return false
		}
		writeRegistryError(w, req, code, errorCode(code), "testkit fault: status "+strconv.Itoa(code))
		return true
	})
}

// FailTimes is FailStatus for only the first n matching requests; later ones
// pass, as with a flaky registry that recovers.
func FailTimes(pathSubstr string, code, n int) Fault {
	var seen atomic.Int64
	fail := FailStatus(pathSubstr, code)
	return func(next http.Handler) http.Handler {
		failing := fail(next)
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.Contains(req.URL.Path, pathSubstr) && seen.Add(1) <= int64(n) {
				failing.ServeHTTP(w, req)
				return
			}
			next.ServeHTTP(w, req)
		})
	}
}

func errorCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusForbidden:
		return "DENIED"
	case http.StatusNotFound:
		return "NAME_UNKNOWN"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

// CorruptBlob serves GETs of the blob (or manifest) with this digest with one
// byte inverted in the middle of the body: same length, same headers, wrong
// content, so only a digest check catches it. digestHex may carry the
// "sha256:" prefix.
func CorruptBlob(digestHex string) Fault {
	return bodyFault(digestHex, func(w *bodyWriter) {
		w.onWrite = func(p []byte) ([]byte, error) {
			mid := w.contentLength / 2
			if mid < w.written || mid >= w.written+int64(len(p)) {
				return p, nil
			}
			q := append([]byte(nil), p...)
			q[mid-w.written] ^= 0xff
			return q, nil
		}
	})
}

// StallBlob sends the first `after` body bytes of GETs of this digest, then
// blocks until release is closed (and sends the rest) or the client goes
// away or the registry closes. Each matching request stalls; a body shorter
// than after is sent whole; a nil release stalls until the client leaves.
func StallBlob(digestHex string, after int64, release <-chan struct{}) Fault {
	return bodyFault(digestHex, func(w *bodyWriter) {
		stalled := false
		w.onWrite = func(p []byte) ([]byte, error) {
			if stalled || w.written+int64(len(p)) < after {
				return p, nil
			}
			head := p[:after-w.written]
			if len(head) > 0 {
				if _, err := w.ResponseWriter.Write(head); err != nil {
					return nil, err
				}
				w.written += int64(len(head))
			}
			w.flush()
			stalled = true
			select {
			case <-release:
			case <-w.ctx.Done():
				return nil, w.ctx.Err()
			}
			return p[len(head):], nil
		}
	})
}

// SlowBlob serves GETs of this digest at about bytesPerSec (at least 1), in
// small flushed chunks so the client sees steady progress rather than bursts.
func SlowBlob(digestHex string, bytesPerSec int64) Fault {
	bps := max(bytesPerSec, 1)
	chunk := max(bps/20, 1) // ~20 writes a second
	return bodyFault(digestHex, func(w *bodyWriter) {
		var start time.Time
		w.onWrite = func(p []byte) ([]byte, error) {
			if start.IsZero() {
				start = time.Now()
			}
			for len(p) > 0 {
				n := min(int64(len(p)), chunk)
				due := start.Add(time.Duration(float64(w.written+n) / float64(bps) * float64(time.Second)))
				if err := sleepUntil(w.ctx, due); err != nil {
					return nil, err
				}
				if _, err := w.ResponseWriter.Write(p[:n]); err != nil {
					return nil, err
				}
				w.written += n
				w.flush()
				p = p[n:]
			}
			return nil, nil
		}
	})
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bodyFault wraps the ResponseWriter of successful GETs whose path ends in
// the digest; setup installs the write hook on each new wrapper.
func bodyFault(digestHex string, setup func(*bodyWriter)) Fault {
	hexPart := strings.TrimPrefix(digestHex, "sha256:")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method != http.MethodGet || hexPart == "" || !strings.HasSuffix(req.URL.Path, hexPart) {
				next.ServeHTTP(w, req)
				return
			}
			bw := &bodyWriter{ResponseWriter: w, ctx: req.Context()}
			setup(bw)
			next.ServeHTTP(bw, req)
		})
	}
}

// bodyWriter passes the body through onWrite once the status is known to be
// 2xx; error responses (401, 404) are left alone. onWrite returns the bytes
// still to write; it may write some itself (advancing written).
type bodyWriter struct {
	http.ResponseWriter
	ctx           context.Context
	onWrite       func(p []byte) ([]byte, error)
	status        int
	contentLength int64
	written       int64
}

func (w *bodyWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		w.contentLength, _ = strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *bodyWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.status < 200 || w.status > 299 {
		return w.ResponseWriter.Write(p)
	}
	n := len(p)
	rest, err := w.onWrite(p)
	if err != nil {
		return 0, err
	}
	if len(rest) > 0 {
		m, err := w.ResponseWriter.Write(rest)
		w.written += int64(m)
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

func (w *bodyWriter) flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// Flush lets handlers that flush keep doing so through the wrapper.
func (w *bodyWriter) Flush() { w.flush() }

// Unwrap serves http.ResponseController.
func (w *bodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
