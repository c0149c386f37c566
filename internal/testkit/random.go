package testkit

import (
	"archive/tar"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// randomFiles is how many files RandomLayer spreads its bytes over (fewer when
// size is small), so appliers see more than one file without per-file overhead
// dominating throughput numbers.
const (
	randomFiles       = 8
	randomMinFileSize = 64 << 10
)

// RandomLayer is a layer of incompressible pseudo-random bytes, size bytes of
// file content in total (tar headers come on top) spread over up to 8 files
// random/file-N. Equal (size, seed, c) give the same layer and digest; a
// different seed gives different content.
//
// It is cheap to make (about 300 MB/s on one core, bounded by the two SHA-256
// passes): content comes from ChaCha8 and is never held uncompressed, and
// since random data does not compress, gzip writes stored deflate blocks and
// zstd uses its fastest level, which stores such blocks raw. Blobs are
// therefore about size bytes whatever c is, yet valid streams that a puller
// must decompress. Only the blob is kept in memory.
func RandomLayer(size int64, seed int64, c Compression) (v1.Layer, error) {
	if size < 0 {
		return nil, errdefs.InvalidArgument("testkit: RandomLayer size %d is negative", size)
	}
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	rng := rand.NewChaCha8(key)

	n := min(int64(randomFiles), max(1, size/randomMinFileSize))
	// Stored blocks add ~5 bytes per 64 KiB; tar adds 1 KiB per file.
	hint := size + size/1024 + (n+2)*1024 + 4096
	return buildLayer(c, storeLevel, hint, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := tw.WriteHeader(mustHeader(Dir("random/"))); err != nil {
			return err
		}
		left := size
		for i := range n {
			fileSize := left / (n - i)
			left -= fileSize
			h := mustHeader(Entry{Name: fmt.Sprintf("random/file-%d", i)})
			h.Size = fileSize
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := io.CopyN(tw, rng, fileSize); err != nil {
				return err
			}
		}
		return tw.Close()
	})
}

// mustHeader is for entries built here, which are valid by construction.
func mustHeader(e Entry) *tar.Header {
	h, err := e.header()
	if err != nil {
		panic(err)
	}
	return h
}
