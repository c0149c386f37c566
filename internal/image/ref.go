package image

import (
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// Ref is an image reference normalised the way Docker and kubelet do it:
// "busybox" is docker.io/library/busybox:latest.
type Ref struct {
	Name   string        // registry and repository: docker.io/library/busybox
	Domain string        // registry host[:port]: docker.io
	Path   string        // repository inside the registry: library/busybox
	Tag    string        // "latest" when neither a tag nor a digest was given
	Digest digest.Digest // set for x@sha256:... and x:tag@sha256:...
}

// ParseRef normalises s. A reference with both a tag and a digest keeps both:
// the pull goes by digest and the record gets the tag too.
func ParseRef(s string) (Ref, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Ref{}, errdefs.InvalidArgument("image reference is empty")
	}
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, errdefs.InvalidArgument("invalid image reference %q: %v", s, err)
	}
	r := Ref{
		Name:   named.Name(),
		Domain: reference.Domain(named),
		Path:   reference.Path(named),
	}
	if t, ok := named.(reference.Tagged); ok {
		r.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.Digest = d.Digest()
		// The grammar accepts any registered algorithm name; we can only
		// verify what we can hash.
		if !r.Digest.Algorithm().Available() {
			return Ref{}, errdefs.InvalidArgument("invalid image reference %q: unsupported digest algorithm %q", s, r.Digest.Algorithm())
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	return r, nil
}

// String is the canonical form: name:tag, name@digest or name:tag@digest.
func (r Ref) String() string {
	s := r.Name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// TagRef is name:tag, or "" when the reference has no tag.
func (r Ref) TagRef() string {
	if r.Tag == "" {
		return ""
	}
	return r.Name + ":" + r.Tag
}

// DigestRef is name@digest, or "" when the reference has no digest.
func (r Ref) DigestRef() string {
	if r.Digest == "" {
		return ""
	}
	return r.Name + "@" + r.Digest.String()
}

// object is what the registry API is asked for: the digest when there is one
// (tags are mutable, digests are what the caller pinned), else the tag.
func (r Ref) object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}
