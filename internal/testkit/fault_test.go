package testkit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobRegistry serves one random layer and returns its digest and content.
func blobRegistry(t *testing.T, size int64) (*Registry, v1.Hash, []byte) {
	t.Helper()
	r := NewRegistry(t)
	l := MustRandomLayer(t, size, 7, Uncompressed)
	r.MustPush(t, "blob:v1", MustImage(t, ImageConfig{}, l))
	rc, _ := l.Compressed()
	content, _ := io.ReadAll(rc)
	return r, Must(l.Digest()), content
}

func blobURL(r *Registry, d v1.Hash) string { return r.URL + "/v2/blob/blobs/" + d.String() }

func TestCorruptBlob(t *testing.T) {
	r, digest, content := blobRegistry(t, 100<<10)
	r.SetFault(CorruptBlob(digest.Hex))

	resp, err := http.Get(blobURL(r, digest))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	if resp.StatusCode != 200 || len(got) != len(content) || bytes.Equal(got, content) {
		t.Fatalf("status %d, %d bytes (want %d, corrupted)", resp.StatusCode, len(got), len(content))
	}
	diff := 0
	for i := range got {
		if got[i] != content[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes differ, want 1", diff)
	}

	// ggcr's digest verification catches it.
	_, err = pull(t, r, "blob:v1", authn.Anonymous)
	if err == nil || !strings.Contains(err.Error(), "error verifying sha256 checksum") {
		t.Errorf("pull of corrupt blob: err = %v, want a digest mismatch", err)
	}

	// The "sha256:" form matches too; clearing the fault heals the registry.
	r.SetFault(CorruptBlob(digest.String()))
	if _, err := pull(t, r, "blob:v1", authn.Anonymous); err == nil {
		t.Error("sha256:-prefixed CorruptBlob had no effect")
	}
	r.SetFault(nil)
	if _, err := pull(t, r, "blob:v1", authn.Anonymous); err != nil {
		t.Errorf("after SetFault(nil): %v", err)
	}
}

func TestStallBlobBlocksUntilRelease(t *testing.T) {
	r, digest, content := blobRegistry(t, 256<<10)
	release := make(chan struct{})
	const after = 1000
	r.SetFault(StallBlob(digest.Hex, after, release))

	resp, err := http.Get(blobURL(r, digest))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, after)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("first %d bytes: %v", after, err)
	}
	rest := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(resp.Body)
		rest <- b
	}()
	// Proving a negative needs a window; 200 ms is ample on a loaded box
	// for a local server that is not stalled to send 256 KiB.
	select {
	case b := <-rest:
		t.Fatalf("stalled body continued with %d bytes before release", len(b))
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	got := append(head, <-rest...)
	if !bytes.Equal(got, content) {
		t.Errorf("after release: %d bytes, content equal=%v", len(got), bytes.Equal(got, content))
	}
}

func TestStallBlobEndsWhenClientLeavesOrRegistryCloses(t *testing.T) {
	r, digest, _ := blobRegistry(t, 64<<10)
	never := make(chan struct{})
	handlerDone := make(chan struct{}, 2)
	r.SetFault(Chain(
		func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				next.ServeHTTP(w, req)
				if strings.Contains(req.URL.Path, digest.Hex) {
					handlerDone <- struct{}{}
				}
			})
		},
		StallBlob(digest.Hex, 0, never),
	))

	// A client that gives up frees the handler.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", blobURL(r, digest), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: headers should arrive before the stall", resp.StatusCode)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-handlerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("handler still stalled after the client left")
	}

	// Close frees a stalled handler too, well before its 5 s grace period.
	resp, err = http.Get(blobURL(r, digest))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	<-handlerDone
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a stalled request", d)
	}
}

func TestSlowBlobDeliversWholeBlobSteadily(t *testing.T) {
	r, digest, content := blobRegistry(t, 64<<10)
	const bps = 256 << 10 // the blob takes ~0.25 s
	r.SetFault(SlowBlob(digest.Hex, bps))

	start := time.Now()
	resp, err := http.Get(blobURL(r, digest))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	elapsed := time.Since(start)
	if !bytes.Equal(got, content) {
		t.Fatalf("got %d bytes, want the %d-byte blob intact", len(got), len(content))
	}
	if min := time.Duration(float64(len(content)) / bps * 0.9 * float64(time.Second)); elapsed < min {
		t.Errorf("delivered in %v, faster than the %d B/s limit allows (%v)", elapsed, bps, min)
	}
	// And ggcr pulls through it.
	if _, err := pull(t, r, "blob:v1", authn.Anonymous); err != nil {
		t.Errorf("pull through slow registry: %v", err)
	}
}

func TestFailStatusAndFailTimes(t *testing.T) {
	r, digest, _ := blobRegistry(t, 1<<10)
	get := func(path string) int {
		t.Helper()
		resp, err := http.Get(r.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != 200 && !bytes.Contains(body, []byte(`"errors"`)) {
			t.Errorf("%s: error body %q is not registry JSON", path, body)
		}
		return resp.StatusCode
	}
	r.SetFault(FailStatus("/manifests/", http.StatusServiceUnavailable))
	if c := get("/v2/blob/manifests/v1"); c != 503 {
		t.Errorf("manifest = %d, want 503", c)
	}
	if c := get("/v2/blob/blobs/" + digest.String()); c != 200 {
		t.Errorf("unmatched blob = %d, want 200", c)
	}

	r.SetFault(FailTimes("/manifests/", http.StatusTooManyRequests, 2))
	var codes []int
	for range 4 {
		codes = append(codes, get("/v2/blob/manifests/v1"))
	}
	if fmt.Sprint(codes) != "[429 429 200 200]" {
		t.Errorf("codes = %v, want two 429s then 200s", codes)
	}
	if n := r.Requests("/manifests/"); n != 5 {
		t.Errorf("Requests counted %d manifest requests, want 5 (faulted ones count)", n)
	}
}

func TestFaultFuncAndChain(t *testing.T) {
	r := NewRegistry(t)
	var mu sync.Mutex
	var seen []string
	r.SetFault(Chain(
		FaultFunc(func(w http.ResponseWriter, req *http.Request) bool {
			mu.Lock()
			seen = append(seen, "first "+req.URL.Path)
			mu.Unlock()
			return false
		}),
		FaultFunc(func(w http.ResponseWriter, req *http.Request) bool {
			if req.URL.Path == "/v2/teapot/manifests/x" {
				w.WriteHeader(http.StatusTeapot)
				return true
			}
			return false
		}),
	))
	for path, want := range map[string]int{"/v2/teapot/manifests/x": 418, "/v2/": 200} {
		resp, err := http.Get(r.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("first fault saw %q", seen)
	}
}

func TestBodyFaultsIgnoreErrorResponses(t *testing.T) {
	// An unknown blob's 404 body passes through unharmed.
	r := NewRegistry(t)
	missing := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256([]byte("nope")))}
	resp, err := http.Get(blobURL(r, missing))
	if err != nil {
		t.Fatal(err)
	}
	clean := readAll(t, resp)
	r.SetFault(CorruptBlob(missing.Hex))
	resp, err = http.Get(blobURL(r, missing))
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 404 || !bytes.Equal(got, clean) {
		t.Errorf("404 under CorruptBlob: %d %q, want %q", resp.StatusCode, got, clean)
	}
}
