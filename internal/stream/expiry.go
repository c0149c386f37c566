package stream

import (
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LibraryURLTTL is how long k8s.io/cri-streaming keeps a URL's request: a
// constant there, so it is the ceiling on stream.url_ttl.
const LibraryURLTTL = time.Minute

// expiry enforces a URL lifetime shorter than the library's: it notes when
// each handed-out token dies and answers 404 for a dead one before the
// library sees it. The library still removes a token on first use and after
// its own minute; expiry only ever refuses earlier.
type expiry struct {
	ttl atomic.Int64 // a time.Duration; a reload changes it for URLs handed out afterwards
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]time.Time // deadline by token
}

func newExpiry(ttl time.Duration) *expiry {
	e := &expiry{now: time.Now, tokens: map[string]time.Time{}}
	e.ttl.Store(int64(ttl))
	return e
}

// issued notes the token of a URL just handed out, and forgets tokens past
// the library's lifetime, which the library has dropped too.
func (e *expiry) issued(rawURL string) {
	tok := token(rawURL)
	if tok == "" {
		return
	}
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for t, dl := range e.tokens {
		if now.After(dl.Add(LibraryURLTTL)) {
			delete(e.tokens, t)
		}
	}
	e.tokens[tok] = now.Add(time.Duration(e.ttl.Load()))
}

// wrap refuses requests whose token has expired.
func (e *expiry) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := path.Base(r.URL.Path)
		e.mu.Lock()
		dl, ok := e.tokens[tok]
		expired := ok && e.now().After(dl)
		if ok {
			// Single use: the library refuses a second use by itself.
			delete(e.tokens, tok)
		}
		e.mu.Unlock()
		if expired {
			http.Error(w, "stream URL expired", http.StatusNotFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// token is the last path element of a streaming URL (/exec/<token>, ...).
func token(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p == "" {
		return ""
	}
	return path.Base(p)
}
