package testkit

import (
	"bytes"
	"fmt"
	"io"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression selects how a layer blob is compressed.
type Compression int

const (
	Gzip Compression = iota
	Zstd
	Uncompressed
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Uncompressed:
		return "uncompressed"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// compressionLevel trades blob size for generation speed.
type compressionLevel int

const (
	defaultLevel compressionLevel = iota
	// storeLevel is for incompressible data: gzip writes stored deflate
	// blocks (a valid stream at memcpy speed) and zstd its fastest level,
	// which stores incompressible blocks raw.
	storeLevel
)

func (c Compression) mediaType(docker bool) (types.MediaType, error) {
	switch c {
	case Gzip:
		if docker {
			return types.DockerLayer, nil
		}
		return types.OCILayer, nil
	case Zstd:
		// Docker schema 2 has no zstd type; registries and runtimes accept
		// the OCI one inside Docker manifests.
		return types.OCILayerZStd, nil
	case Uncompressed:
		if docker {
			return types.DockerUncompressedLayer, nil
		}
		return types.OCIUncompressedLayer, nil
	}
	return "", errdefs.InvalidArgument("testkit: unknown compression %d", int(c))
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func (c Compression) compressor(w io.Writer, level compressionLevel) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		// The header carries no name or time, so the output is deterministic.
		l := gzip.DefaultCompression
		if level == storeLevel {
			l = gzip.NoCompression
		}
		return gzip.NewWriterLevel(w, l)
	case Zstd:
		l := zstd.SpeedDefault
		if level == storeLevel {
			l = zstd.SpeedFastest
		}
		return zstd.NewWriter(w, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1))
	case Uncompressed:
		return nopWriteCloser{w}, nil
	}
	return nil, errdefs.InvalidArgument("testkit: unknown compression %d", int(c))
}

// memLayer is an immutable layer held as its compressed blob; the
// uncompressed stream is re-derived on demand to halve memory for big layers.
type memLayer struct {
	blob      []byte
	digest    v1.Hash
	diffID    v1.Hash
	mediaType types.MediaType
	comp      Compression
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *memLayer) withMediaType(mt types.MediaType) *memLayer { c := *l; c.mediaType = mt; return &c }

func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	r := bytes.NewReader(l.blob)
	switch l.comp {
	case Gzip:
		return gzip.NewReader(r)
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
