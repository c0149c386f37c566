package cri

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"google.golang.org/grpc"
)

// lines records what a rateLog writes.
type lines struct {
	mu  sync.Mutex
	got []string
}

func (l *lines) write(key string) func(int) {
	return func(n int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.got = append(l.got, fmt.Sprintf("%s:%d", key, n))
	}
}

func (l *lines) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got...)
}

func TestRateLogFoldsRepeatsIntoOneCount(t *testing.T) {
	r := newRateLog(20*time.Millisecond, 100)
	var l lines
	for range 5 {
		r.log("a", "a", l.write("a"))
	}
	r.log("b", "b", l.write("b"))
	if got := l.snapshot(); strings.Join(got, " ") != "a:0 b:0" {
		t.Fatalf("first lines: %v", got)
	}
	eventually(t, "the count of a's repeats", func() error {
		if got := strings.Join(l.snapshot(), " "); got != "a:0 b:0 a:4" {
			return fmt.Errorf("lines so far: %s", got)
		}
		return nil
	})
	// After the window, the next one is a first line again.
	eventually(t, "a new window", func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.seen) != 0 {
			return fmt.Errorf("%d keys still tracked", len(r.seen))
		}
		return nil
	})
	r.log("a", "a", l.write("a"))
	if got := l.snapshot(); got[len(got)-1] != "a:0" {
		t.Fatalf("after the window: %v", got)
	}
}

// With the table full, distinct messages share their fallback key.
func TestRateLogBoundsDistinctMessages(t *testing.T) {
	r := newRateLog(time.Hour, 2)
	var l lines
	for i := range 100 {
		k := fmt.Sprintf("m%d", i)
		r.log(k, "fallback", l.write(k))
	}
	if got := strings.Join(l.snapshot(), " "); got != "m0:0 m1:0 m2:0" {
		t.Fatalf("written: %s", got)
	}
	if n := len(r.seen); n != 3 || r.seen["fallback"].repeats != 97 {
		t.Fatalf("%d keys, fallback %+v", n, r.seen["fallback"])
	}
}

// The same failure in a loop is logged once per window, not once a call.
func TestRepeatedFailureIsLoggedOnce(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.ImageService/PullImage"}
	ic := UnaryInterceptor(log)
	for range 50 {
		ic(context.Background(), nil, info, func(context.Context, any) (any, error) {
			return nil, errdefs.Unavailable("registry down")
		})
	}
	ic(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, errdefs.Unavailable("registry on fire")
	})
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(buf.String(), "registry down"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "registry on fire") {
		t.Errorf("another failure was not logged:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
