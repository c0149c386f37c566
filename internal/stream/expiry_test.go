package stream

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestExpiryRefusesATokenPastItsTTLOnly(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	e := newExpiry(10 * time.Second)
	e.now = clk.now
	served := 0
	h := e.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}

	e.issued("http://127.0.0.1:1234/exec/fresh")
	e.issued("http://127.0.0.1:1234/attach/stale")
	clk.advance(5 * time.Second)
	if code := get("/exec/fresh"); code != http.StatusOK || served != 1 {
		t.Fatalf("fresh token: code %d, served %d", code, served)
	}
	clk.advance(6 * time.Second)
	if code := get("/attach/stale"); code != http.StatusNotFound || served != 1 {
		t.Fatalf("expired token: code %d, served %d; want 404 without reaching the library", code, served)
	}
	// Unknown tokens are the library's to refuse.
	if code := get("/portforward/unknown"); code != http.StatusOK || served != 2 {
		t.Fatalf("unknown token: code %d, served %d", code, served)
	}
}

func TestExpiryForgetsTokensTheLibraryDropped(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	e := newExpiry(time.Second)
	e.now = clk.now
	for _, tok := range []string{"a", "b", "c"} {
		e.issued("http://h/exec/" + tok)
	}
	clk.advance(LibraryURLTTL + 2*time.Second)
	e.issued("http://h/exec/d")
	e.mu.Lock()
	n := len(e.tokens)
	e.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d tokens kept, want only the new one", n)
	}
}

func TestTokenIsTheLastPathElement(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:1/exec/AbC-_x":   "AbC-_x",
		"https://[::1]:2/portforward/tok/": "tok",
		"http://h":                         "",
		"://bad":                           "",
	} {
		if got := token(in); got != want {
			t.Errorf("token(%q) = %q, want %q", in, got, want)
		}
	}
}

// A reload's url_ttl applies to URLs handed out afterwards; URLs already
// out keep the deadline they were given.
func TestSetURLTTLAppliesToNewURLs(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	s := &Server{expiry: newExpiry(30 * time.Second)}
	s.expiry.now = clk.now
	h := s.expiry.wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	s.expiry.issued("http://127.0.0.1:1/exec/before")
	s.SetURLTTL(2 * time.Second)
	s.expiry.issued("http://127.0.0.1:1/exec/after")
	clk.advance(5 * time.Second)
	if code := get("/exec/after"); code != http.StatusNotFound {
		t.Errorf("URL issued after the reload lived past the new TTL: %d", code)
	}
	if code := get("/exec/before"); code != http.StatusOK {
		t.Errorf("URL issued before the reload lost its old deadline: %d", code)
	}
	s.SetURLTTL(time.Hour)
	if got := time.Duration(s.expiry.ttl.Load()); got != LibraryURLTTL {
		t.Errorf("TTL above the library's = %v", got)
	}
}
