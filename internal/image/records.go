package image

import (
	"fmt"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
)

// commit records a pulled image whose layers the pull holds. Tags and digests
// it claims move to it from other images in the same transaction; an image
// left with neither is removed with its layers. If the image already exists
// the records merge and the pull's surplus layer references are dropped.
func (s *Service) commit(img Image) (Image, error) {
	s.mu.Lock()
	merged := &img
	old := s.idx.byID[img.ID]
	if old != nil {
		m := cloneImage(old)
		m.RepoTags = union(old.RepoTags, img.RepoTags)
		m.RepoDigests = union(old.RepoDigests, img.RepoDigests)
		m.PulledAt = img.PulledAt
		m.ManifestDigest, m.ManifestMediaType = img.ManifestDigest, img.ManifestMediaType
		merged = &m
	}
	changed := map[digest.Digest]*Image{}
	current := func(id digest.Digest) *Image {
		if c, ok := changed[id]; ok {
			return c
		}
		return s.idx.byID[id]
	}
	for _, t := range img.RepoTags {
		if owner, ok := s.idx.byTag[t]; ok && owner != img.ID {
			c := cloneImage(current(owner))
			c.RepoTags = without(c.RepoTags, t)
			changed[owner] = &c
		}
	}
	for _, d := range img.RepoDigests {
		if owner, ok := s.idx.byDigest[d]; ok && owner != img.ID {
			c := cloneImage(current(owner))
			c.RepoDigests = without(c.RepoDigests, d)
			changed[owner] = &c
		}
	}
	put := []*Image{merged}
	var del []digest.Digest
	var freed [][]digest.Digest
	for id, c := range changed {
		if len(c.RepoTags) == 0 && len(c.RepoDigests) == 0 {
			del = append(del, id)
			freed = append(freed, c.ChainIDs)
		} else {
			put = append(put, c)
		}
	}
	crashpoint.Hit(crashpoint.PullBeforeRecord)
	if err := writeRecords(s.db, put, del); err != nil {
		s.mu.Unlock()
		return Image{}, fmt.Errorf("record image %s: %w", img.ID, err)
	}
	for _, p := range put {
		s.idx.put(p)
	}
	for _, id := range del {
		s.idx.del(id)
	}
	out := cloneImage(merged)
	s.mu.Unlock()

	if old != nil {
		s.release(img.ChainIDs)
	}
	for _, chain := range freed {
		s.release(chain)
	}
	return out, nil
}

// Remove removes the image ref resolves to, with every tag, and the layers no
// longer referenced. Removing an absent image succeeds.
func (s *Service) Remove(ref string) error {
	s.mu.Lock()
	img, err := s.lookupLocked(ref)
	if err != nil || img == nil {
		s.mu.Unlock()
		return err
	}
	if err := writeRecords(s.db, nil, []digest.Digest{img.ID}); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("remove image %s: %w", img.ID, err)
	}
	s.idx.del(img.ID)
	s.mu.Unlock()
	crashpoint.Hit(crashpoint.RemoveImageRecord)
	s.release(img.ChainIDs)
	return nil
}

// SetPinned marks the image ref resolves to as pinned (CRI `pinned`: kubelet's
// image GC leaves it alone, as for the sandbox image) or not.
func (s *Service) SetPinned(ref string, pinned bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	img, err := s.lookupLocked(ref)
	if err != nil {
		return err
	}
	if img == nil {
		return errdefs.NotFound("image %q not found", ref)
	}
	if img.Pinned == pinned {
		return nil
	}
	c := cloneImage(img)
	c.Pinned = pinned
	if err := writeRecords(s.db, []*Image{&c}, nil); err != nil {
		return fmt.Errorf("pin image %s: %w", img.ID, err)
	}
	s.idx.put(&c)
	return nil
}
