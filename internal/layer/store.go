// Package layer owns <root>/layers: unpacked image layers, each a directory
// usable as an overlayfs lower dir, keyed by chain ID and shared by every image
// (and later every container rootfs) that references it.
//
// On disk:
//
//	<root>/layers/<chain-id-hex>/diff/        unpacked content (overlay whiteouts)
//	<root>/layers/<chain-id-hex>/layer.json   Info, written before the commit rename
//	<root>/layers/tmp/<random>/               unpacks in progress; wiped at Open
//
// A layer exists exactly when its directory exists under its chain ID: it is
// filled under tmp/ and renamed into place, so a crash never leaves half a layer.
// References are counted in memory only; whoever holds layers (the image store,
// container rootfs) re-acquires them at start-up before Prune removes the rest.
//
// Removal is the commit in reverse: a layer directory is first renamed into
// tmp/ and only then deleted, so a crash mid-delete leaves garbage that the
// next Open wipes, never a layer with part of its content.
package layer

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Info describes one committed layer.
type Info struct {
	ChainID digest.Digest `json:"chainID"`
	Parent  digest.Digest `json:"parent,omitempty"` // chain ID of the layer below; "" for the base
	DiffID  digest.Digest `json:"diffID"`           // digest of the uncompressed tar
	// Digest and CompressedSize describe the blob it was pulled from.
	Digest         digest.Digest `json:"digest,omitempty"`
	CompressedSize int64         `json:"compressedSize,omitempty"`
	Size           int64         `json:"size"` // bytes of the unpacked content
}

const (
	tmpDirName = "tmp"
	diffName   = "diff"
	infoName   = "layer.json"
)

// Store is the layer store. Safe for concurrent use.
type Store struct {
	dir string

	mu     sync.Mutex
	layers map[digest.Digest]*layerRef
	fills  map[digest.Digest]*fillCall
	gen    uint64 // bumped whenever a layer directory appears or goes
	usage  usageCache

	usageMu sync.Mutex // one walk at a time; latecomers reuse its result
}

type layerRef struct {
	info Info
	refs int
}

// Open opens (creating if needed) the store at dir (normally <root>/layers) and
// removes leftovers of interrupted unpacks.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	tmp := filepath.Join(dir, tmpDirName)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("open layer store: wipe %s: %w", tmp, err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	spreadChildren(tmp)
	s := &Store{
		dir:    dir,
		layers: map[digest.Digest]*layerRef{},
		fills:  map[digest.Digest]*fillCall{},
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open layer store: %w", err)
	}
	for _, ent := range ents {
		name := ent.Name()
		if name == tmpDirName {
			continue
		}
		info, err := loadLayer(dir, name)
		if err != nil {
			// Not a committed layer (the store writes nothing else here).
			if err := s.discard(name); err != nil {
				return nil, fmt.Errorf("open layer store: remove leftover %s: %w", name, err)
			}
			continue
		}
		s.layers[info.ChainID] = &layerRef{info: info}
	}
	return s, nil
}

// loadLayer reads and checks the record of the layer directory name.
func loadLayer(dir, name string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(dir, name, infoName))
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return Info{}, err
	}
	if err := validChainID(info.ChainID); err != nil {
		return Info{}, err
	}
	if info.ChainID.Encoded() != name {
		return Info{}, fmt.Errorf("record of %s is for %s", name, info.ChainID)
	}
	if err := info.DiffID.Validate(); err != nil {
		return Info{}, err
	}
	if info.Parent != "" {
		if err := info.Parent.Validate(); err != nil {
			return Info{}, err
		}
	}
	fi, err := os.Lstat(filepath.Join(dir, name, diffName))
	if err != nil {
		return Info{}, err
	}
	if !fi.IsDir() {
		return Info{}, fmt.Errorf("%s/%s is not a directory", name, diffName)
	}
	return info, nil
}

func validChainID(id digest.Digest) error {
	if err := id.Validate(); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "chain ID %q: %w", id, err)
	}
	return nil
}

// discard removes <dir>/name crash-safely: renamed into tmp/ first, deleted
// after. Call without s.mu held unless name can no longer be committed to.
func (s *Store) discard(name string) error {
	doomed, err := s.detach(name)
	if err != nil {
		return err
	}
	return os.RemoveAll(doomed)
}

// detach renames <dir>/name into tmp/ and returns its new path.
func (s *Store) detach(name string) (string, error) {
	doomed := filepath.Join(s.dir, tmpDirName, "rm-"+rand.Text())
	if err := os.Rename(filepath.Join(s.dir, name), doomed); err != nil {
		return "", err
	}
	return doomed, nil
}

// Acquire takes a reference on an existing layer.
func (s *Store) Acquire(chainID digest.Digest) (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.layers[chainID]
	if !ok {
		return Info{}, false
	}
	l.refs++
	return l.info, true
}

// Release drops one reference on each layer and removes the layers left with none.
// Releasing a layer that is absent (NotFound) or holds no reference
// (FailedPrecondition) is an error that does not stop the others.
func (s *Store) Release(chainIDs ...digest.Digest) error {
	var doomed []string
	var errs []error
	s.mu.Lock()
	for _, id := range chainIDs {
		l, ok := s.layers[id]
		switch {
		case !ok:
			errs = append(errs, errdefs.NotFound("release layer %s: not in the store", id))
			continue
		case l.refs <= 0:
			errs = append(errs, errdefs.FailedPrecondition("release layer %s: not referenced", id))
			continue
		}
		if l.refs--; l.refs > 0 {
			continue
		}
		if path, err := s.removeLocked(id); err != nil {
			errs = append(errs, err)
		} else {
			doomed = append(doomed, path)
		}
	}
	s.mu.Unlock()
	return errors.Join(append(errs, removeAll(doomed)...)...)
}

// Prune removes every layer without references. Call it once at start-up, after
// every holder has re-acquired its layers.
func (s *Store) Prune() error {
	var errs []error
	var doomed []string
	s.mu.Lock()
	for id, l := range s.layers {
		if l.refs > 0 {
			continue
		}
		if path, err := s.removeLocked(id); err != nil {
			errs = append(errs, err)
		} else {
			doomed = append(doomed, path)
		}
	}
	s.mu.Unlock()
	return errors.Join(append(errs, removeAll(doomed)...)...)
}

// removeLocked forgets layer id and detaches its directory. Renaming under
// s.mu keeps a new fill of the same chain ID from finding it still in place.
// The slow delete of the detached copy is left to the caller, outside s.mu.
func (s *Store) removeLocked(id digest.Digest) (string, error) {
	path, err := s.detach(id.Encoded())
	if err != nil {
		// Still on disk, so still a layer: keep it for a later Prune.
		return "", fmt.Errorf("remove layer %s: %w", id, err)
	}
	delete(s.layers, id)
	s.gen++
	return path, nil
}

func removeAll(paths []string) []error {
	var errs []error
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Get returns a committed layer's info.
func (s *Store) Get(chainID digest.Digest) (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.layers[chainID]
	if !ok {
		return Info{}, false
	}
	return l.info, true
}

// DiffDir returns the directory of a layer's content, the overlay lower dir.
// It returns "" for a layer that is not in the store, so a caller cannot
// build a mount from a layer it does not hold.
func (s *Store) DiffDir(chainID digest.Digest) string {
	s.mu.Lock()
	_, ok := s.layers[chainID]
	s.mu.Unlock()
	if !ok {
		return ""
	}
	return s.diffDir(chainID)
}

func (s *Store) diffDir(chainID digest.Digest) string {
	return filepath.Join(s.dir, chainID.Encoded(), diffName)
}
