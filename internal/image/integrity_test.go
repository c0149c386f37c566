package image

import (
	"context"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// twoLayerImage has a good base layer and the given top layer, so a failing
// pull has something to clean up.
func twoLayerImage(t *testing.T, top v1.Layer) (v1.Image, v1.Layer) {
	t.Helper()
	base := testkit.MustRandomLayer(t, 256<<10, 1, testkit.Gzip)
	return testkit.MustImage(t, testkit.ImageConfig{}, base, top), base
}

func TestPullRejectsCorruptContent(t *testing.T) {
	top := testkit.MustRandomLayer(t, 512<<10, 2, testkit.Gzip)
	src, _ := twoLayerImage(t, top)
	tests := []struct {
		name   string
		target v1.Hash
		ref    func(r *testkit.Registry) string
	}{
		{"layer", digestOf(t, top), func(r *testkit.Registry) string { return r.Ref("app") }},
		{"config", configDigest(t, src), func(r *testkit.Registry) string { return r.Ref("app") }},
		{"manifest by digest", digestOf(t, src), func(r *testkit.Registry) string { return r.Ref("app@" + digestOf(t, src).String()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := testkit.NewRegistry(t)
			r.MustPush(t, "app:latest", src)
			r.SetFault(testkit.CorruptBlob(tt.target.Hex))
			_, err := e.svc.Pull(context.Background(), tt.ref(r), nil, nil)
			wantKind(t, err, errdefs.ErrDataLoss)
			if !strings.Contains(err.Error(), tt.target.Hex[:12]) && !strings.Contains(err.Error(), "digest") {
				t.Errorf("message %q", err)
			}
			e.assertEmpty()

			// The same pull succeeds once the registry behaves.
			r.SetFault(nil)
			e.pull(tt.ref(r))
		})
	}
}

// By tag there is no digest to check against but the registry's
// Docker-Content-Digest header.
func TestPullRejectsManifestNotMatchingItsHeader(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	r.MustPush(t, "app:latest", smallImage(t, "m", testkit.Gzip))
	r.SetFault(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if !strings.HasSuffix(req.URL.Path, "/manifests/latest") {
				next.ServeHTTP(w, req)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0x01
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	})
	_, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrDataLoss)
	e.assertEmpty()
}

func TestPullRejectsDiffIDMismatch(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	top := testkit.MustLayer(t, []testkit.Entry{testkit.File("f", "real")}, testkit.Gzip)
	src, _ := twoLayerImage(t, top)
	cf, err := src.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	other := testkit.MustLayer(t, []testkit.Entry{testkit.File("f", "claimed")}, testkit.Gzip)
	cf.RootFS.DiffIDs[1], _ = other.DiffID()
	lying, err := mutate.ConfigFile(src, cf)
	if err != nil {
		t.Fatal(err)
	}
	r.MustPush(t, "app:latest", lying)
	_, err = e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrDataLoss)
	if !strings.Contains(err.Error(), "diff_id") {
		t.Errorf("message %q", err)
	}
	e.assertEmpty()
}

func TestPullRejectsMaliciousLayers(t *testing.T) {
	const hostEscape = "/tmp/testkit-escape"
	if _, err := os.Lstat(hostEscape); err == nil {
		t.Fatalf("%s exists before the test; remove it", hostEscape)
	}
	names := make([]string, 0)
	for name := range testkit.MaliciousLayers() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			r := testkit.NewRegistry(t)
			bad := testkit.MustLayer(t, testkit.MaliciousLayers()[name], testkit.Gzip)
			src, _ := twoLayerImage(t, bad)
			r.MustPush(t, "evil:latest", src)
			_, err := e.svc.Pull(context.Background(), r.Ref("evil"), nil, nil)
			wantKind(t, err, errdefs.ErrInvalidArgument)
			e.assertEmpty()
			filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					if b, _ := os.ReadFile(p); string(b) == testkit.EscapeMarker {
						t.Errorf("escaped file left at %s", p)
					}
				}
				return nil
			})
			if _, err := os.Lstat(hostEscape); err == nil {
				os.Remove(hostEscape)
				t.Errorf("layer wrote %s", hostEscape)
			}
			if b, _ := os.ReadFile("/etc/passwd"); !strings.Contains(string(b), "root:") {
				t.Error("/etc/passwd damaged")
			}
		})
	}
}

func TestPullRejectsUnsupportedImages(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	l := testkit.MustLayer(t, []testkit.Entry{testkit.File("f", "x")}, testkit.Gzip)
	odd := testkit.MustImage(t, testkit.ImageConfig{}, relabelledLayer{Layer: l, mt: "application/vnd.example.thing"})
	r.MustPush(t, "odd:latest", odd)
	_, err := e.svc.Pull(context.Background(), r.Ref("odd"), nil, nil)
	wantKind(t, err, errdefs.ErrInvalidArgument)
	if !strings.Contains(err.Error(), "application/vnd.example.thing") {
		t.Errorf("message %q", err)
	}

	artifact := mutate.ConfigMediaType(testkit.MustImage(t, testkit.ImageConfig{}, l), "application/vnd.example.config+json")
	r.MustPush(t, "artifact:latest", artifact)
	_, err = e.svc.Pull(context.Background(), r.Ref("artifact"), nil, nil)
	wantKind(t, err, errdefs.ErrInvalidArgument)
	e.assertEmpty()
}
