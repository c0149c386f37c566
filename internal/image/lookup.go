package image

import (
	"slices"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
)

// Get resolves an image by ID (sha256:..., hex, or unique ID prefix of at
// least MinIDPrefix hex digits), tag reference or digest reference (also the
// platform manifest's digest). ok=false when absent; an ambiguous prefix or
// a malformed reference is ErrInvalidArgument.
func (s *Service) Get(ref string) (Image, bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	img, err := s.lookupLocked(ref)
	if err != nil || img == nil {
		return Image{}, false, err
	}
	return cloneImage(img), true, nil
}

func (s *Service) lookupLocked(ref string) (*Image, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, errdefs.InvalidArgument("image reference is empty")
	}
	if d, err := digest.Parse(ref); err == nil {
		return s.idx.byID[d], nil
	}
	if len(ref) == 64 && isHex(ref) {
		return s.idx.byID[digest.NewDigestFromEncoded(digest.SHA256, ref)], nil
	}
	r, perr := ParseRef(ref)
	if perr == nil {
		key, m := r.TagRef(), s.idx.byTag
		if r.Digest != "" {
			key, m = r.DigestRef(), s.idx.byDigest
		}
		if id, ok := m[key]; ok {
			return s.idx.byID[id], nil
		}
	}
	prefix := strings.TrimPrefix(ref, digest.SHA256.String()+":")
	if len(prefix) >= MinIDPrefix && isHex(prefix) {
		var found *Image
		for id, img := range s.idx.byID {
			if strings.HasPrefix(id.Encoded(), prefix) {
				if found != nil {
					return nil, errdefs.InvalidArgument("image ID prefix %q matches more than one image", prefix)
				}
				found = img
			}
		}
		return found, nil
	}
	if perr != nil {
		return nil, perr
	}
	return nil, nil
}

// RepoDigests returns the repo digests of the image with ID id, without
// copying the rest of the record: List/Status RPCs call it per container.
func (s *Service) RepoDigests(id digest.Digest) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if img := s.idx.byID[id]; img != nil {
		return slices.Clone(img.RepoDigests)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// List returns all images ordered by ID; a non-empty filter returns the
// image it resolves to (none if it resolves to nothing).
func (s *Service) List(filter string) ([]Image, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if filter != "" {
		img, err := s.lookupLocked(filter)
		if err != nil || img == nil {
			return nil, err
		}
		return []Image{cloneImage(img)}, nil
	}
	out := make([]Image, 0, len(s.idx.byID))
	for _, img := range s.idx.byID {
		out = append(out, cloneImage(img))
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out, nil
}
