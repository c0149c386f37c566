package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const testDigest = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"

func TestParseRef(t *testing.T) {
	tests := []struct {
		in                        string
		name, domain, path, tag   string
		digest, canonical, tagRef string
	}{
		{in: "busybox", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "latest",
			canonical: "docker.io/library/busybox:latest", tagRef: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "1.36",
			canonical: "docker.io/library/busybox:1.36", tagRef: "docker.io/library/busybox:1.36"},
		{in: "user/x", name: "docker.io/user/x", domain: "docker.io", path: "user/x", tag: "latest",
			canonical: "docker.io/user/x:latest", tagRef: "docker.io/user/x:latest"},
		{in: "docker.io/library/busybox:latest", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "latest",
			canonical: "docker.io/library/busybox:latest", tagRef: "docker.io/library/busybox:latest"},
		{in: "localhost:5000/x", name: "localhost:5000/x", domain: "localhost:5000", path: "x", tag: "latest",
			canonical: "localhost:5000/x:latest", tagRef: "localhost:5000/x:latest"},
		{in: "localhost/x", name: "localhost/x", domain: "localhost", path: "x", tag: "latest",
			canonical: "localhost/x:latest", tagRef: "localhost/x:latest"},
		{in: "registry.k8s.io/pause:3.10", name: "registry.k8s.io/pause", domain: "registry.k8s.io", path: "pause", tag: "3.10",
			canonical: "registry.k8s.io/pause:3.10", tagRef: "registry.k8s.io/pause:3.10"},
		{in: "127.0.0.1:5000/a/b/c:v1", name: "127.0.0.1:5000/a/b/c", domain: "127.0.0.1:5000", path: "a/b/c", tag: "v1",
			canonical: "127.0.0.1:5000/a/b/c:v1", tagRef: "127.0.0.1:5000/a/b/c:v1"},
		{in: "[::1]:5000/x", name: "[::1]:5000/x", domain: "[::1]:5000", path: "x", tag: "latest",
			canonical: "[::1]:5000/x:latest", tagRef: "[::1]:5000/x:latest"},
		{in: "x@" + testDigest, name: "docker.io/library/x", domain: "docker.io", path: "library/x", digest: testDigest,
			canonical: "docker.io/library/x@" + testDigest},
		{in: "x:tag@" + testDigest, name: "docker.io/library/x", domain: "docker.io", path: "library/x", tag: "tag", digest: testDigest,
			canonical: "docker.io/library/x:tag@" + testDigest, tagRef: "docker.io/library/x:tag"},
		{in: "  busybox  ", name: "docker.io/library/busybox", domain: "docker.io", path: "library/busybox", tag: "latest",
			canonical: "docker.io/library/busybox:latest", tagRef: "docker.io/library/busybox:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRef(tt.in)
			if err != nil {
				t.Fatalf("ParseRef: %v", err)
			}
			if r.Name != tt.name || r.Domain != tt.domain || r.Path != tt.path || r.Tag != tt.tag || r.Digest.String() != tt.digest {
				t.Errorf("got %+v", r)
			}
			if r.String() != tt.canonical {
				t.Errorf("String() = %q, want %q", r.String(), tt.canonical)
			}
			if r.TagRef() != tt.tagRef {
				t.Errorf("TagRef() = %q, want %q", r.TagRef(), tt.tagRef)
			}
			if tt.digest != "" && r.DigestRef() != tt.name+"@"+tt.digest {
				t.Errorf("DigestRef() = %q", r.DigestRef())
			}
			if tt.digest != "" && r.object() != tt.digest {
				t.Errorf("a reference with a digest must be pulled by digest, got %q", r.object())
			}
		})
	}
}

func TestParseRefInvalid(t *testing.T) {
	for _, in := range []string{
		"",
		"   ",
		"Busybox",
		"x/UPPER",
		"x:",
		"x@sha256:abc",
		"x@md5:d41d8cd98f00b204e9800998ecf8427e",
		"a b",
		"x:tag:tag",
		"/x",
		strings.Repeat("a", 64), // looks like an image ID, not a name
		"x:" + strings.Repeat("t", 129),
	} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseRef(in)
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("ParseRef(%q) = %v, want ErrInvalidArgument", in, err)
			}
			if in != "" && strings.TrimSpace(in) != "" && !strings.Contains(err.Error(), strings.TrimSpace(in)) {
				t.Errorf("message %q does not name the reference", err)
			}
		})
	}
}
