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
package layer

// API CONTRACT (stub; the implementation replaces the bodies, not the signatures).

import (
	"context"
	"errors"

	"github.com/opencontainers/go-digest"
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

// Store is the layer store. Safe for concurrent use.
type Store struct{}

var errStub = errors.New("layer store not implemented yet")

// Open opens (creating if needed) the store at dir (normally <root>/layers) and
// removes leftovers of interrupted unpacks.
func Open(dir string) (*Store, error) { return nil, errStub }

// FillFunc unpacks a layer into dir (an empty directory) and returns what it
// learned about it: at least DiffID and Size.
type FillFunc func(ctx context.Context, dir string) (Info, error)

// Ensure returns the layer chainID (whose parent layer is parent), unpacking it
// with fill when it is absent, and takes one reference on it that the caller
// must Release. Concurrent calls for one chain ID run fill once; if fill fails
// nothing is left on disk and every waiter gets the error.
func (s *Store) Ensure(ctx context.Context, chainID, parent digest.Digest, fill FillFunc) (Info, error) {
	return Info{}, errStub
}

// Acquire takes a reference on an existing layer.
func (s *Store) Acquire(chainID digest.Digest) (Info, bool) { return Info{}, false }

// Release drops one reference on each layer and removes the layers left with none.
func (s *Store) Release(chainIDs ...digest.Digest) error { return errStub }

// Prune removes every layer without references. Call it once at start-up, after
// every holder has re-acquired its layers.
func (s *Store) Prune() error { return errStub }

// Get returns a committed layer's info.
func (s *Store) Get(chainID digest.Digest) (Info, bool) { return Info{}, false }

// DiffDir returns the directory of a layer's content, the overlay lower dir.
func (s *Store) DiffDir(chainID digest.Digest) string { return "" }

// Usage returns bytes and inodes used by the layer store on disk.
func (s *Store) Usage() (bytes, inodes uint64, err error) { return 0, 0, errStub }
