package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"syscall"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// zstd frames may ask for windows of up to 3.75 TiB; real layers use at most
// a few MiB (zstd --long uses 128 MiB), so refuse more rather than allocate.
const maxZstdWindow = 1 << 27

// unpacker streams one layer blob into a directory:
//
//	body → size limit → blob digest → decompress → diff_id digest ⇒ layer.Apply
//
// in two goroutines (⇒ is an aheadReader): one downloads, hashes and
// decompresses while the other creates the files, so the CPU work of the
// first overlaps the syscalls of the second. Nothing is buffered beyond a few
// read-ahead chunks and nothing is written but the unpacked files.
type unpacker struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
	what   string
	onRead func(n int)
}

func (u *unpacker) unpack(ctx context.Context, dir string, body io.Reader) (layer.Info, error) {
	src := &sourceReader{r: body, onRead: u.onRead}
	blobHash := u.desc.Digest.Algorithm().Hash()
	// One byte past the announced size is enough to know the registry sent
	// too much.
	blob := bufio.NewReaderSize(io.TeeReader(io.LimitReader(src, u.desc.Size+1), &countingHash{Hash: blobHash, n: &src.hashed}), 64<<10)

	tarStream, closeDec, decErr := decompressor(blob)
	var stats layer.ApplyStats
	var applyErr error
	diffHash := u.diffID.Algorithm().Hash()
	if decErr == nil {
		dec := &errRecorder{r: tarStream}
		ahead := newAheadReader(io.TeeReader(dec, diffHash))
		stats, applyErr = layer.Apply(ctx, dir, ahead)
		if applyErr == nil {
			// The diff_id covers the whole stream, tar padding included.
			_, decErr = io.Copy(io.Discard, ahead)
		}
		// Apply failed because the stream under it did: not for a failure
		// the read-ahead met further on, which Apply never saw.
		streamFailed := applyErr != nil && ahead.reachedError()
		// From here on this goroutine alone reads the blob and dec.
		ahead.Close()
		if streamFailed && dec.err != nil {
			applyErr, decErr = nil, dec.err
		}
		closeDec()
	}
	if ctx.Err() != nil {
		return layer.Info{}, ctxError(ctx)
	}
	// A blob that is not what the manifest promised explains any failure
	// above better than the failure itself does, so read the rest of it and
	// check before blaming the content.
	_, _ = io.Copy(io.Discard, blob)
	if ctx.Err() != nil {
		return layer.Info{}, ctxError(ctx)
	}
	if src.err != nil {
		return layer.Info{}, errdefs.Unavailable("%s: download failed: %v", u.what, unwrapURLError(src.err))
	}
	if src.hashed > u.desc.Size {
		return layer.Info{}, errdefs.New(errdefs.ErrDataLoss, "%s is corrupt: the registry sent more than the %d bytes the manifest says", u.what, u.desc.Size)
	}
	if src.hashed < u.desc.Size {
		return layer.Info{}, errdefs.New(errdefs.ErrDataLoss, "%s is truncated: the registry sent %d of %d bytes", u.what, src.hashed, u.desc.Size)
	}
	if got := digest.NewDigest(u.desc.Digest.Algorithm(), blobHash); got != u.desc.Digest {
		return layer.Info{}, errdefs.New(errdefs.ErrDataLoss, "%s is corrupt: its content has digest %s", u.what, got)
	}
	if applyErr != nil {
		return layer.Info{}, classifyApplyError(u.what, applyErr)
	}
	if decErr != nil {
		return layer.Info{}, errdefs.New(errdefs.ErrDataLoss, "%s: decompressing: %v", u.what, decErr)
	}
	if got := digest.NewDigest(u.diffID.Algorithm(), diffHash); got != u.diffID {
		return layer.Info{}, errdefs.New(errdefs.ErrDataLoss, "%s: uncompressed content has digest %s, the image config says diff_id %s", u.what, got, u.diffID)
	}
	return layer.Info{
		DiffID:         u.diffID,
		Digest:         u.desc.Digest,
		CompressedSize: u.desc.Size,
		Size:           stats.Bytes,
	}, nil
}

// decompressor sniffs the stream: the magic bytes decide, whatever the media
// type claims (Docker has shipped uncompressed layers labelled gzip).
func decompressor(r *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	default:
		return r, func() {}, nil
	}
}

// classifyApplyError gives an unpack failure its kind: Apply marks path
// escapes itself; a digest-valid blob that is not a tar is a broken image; a
// full disk is exhausted resources.
func classifyApplyError(what string, err error) error {
	switch {
	case kindOf(err) != nil:
		return fmt.Errorf("%s: %w", what, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errdefs.WithKind(errdefs.ErrResourceExhausted, fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, tar.ErrHeader), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, tar.ErrFieldTooLong):
		return errdefs.WithKind(errdefs.ErrInvalidArgument, fmt.Errorf("%s: not a valid layer: %w", what, err))
	}
	return fmt.Errorf("%s: unpacking: %w", what, err)
}

// sourceReader reports progress and remembers the network error, which
// decompressors and the tar reader would otherwise bury.
type sourceReader struct {
	r      io.Reader
	onRead func(int)
	err    error
	hashed int64 // bytes that went into the blob digest
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 && s.onRead != nil {
		s.onRead(n)
	}
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

type countingHash struct {
	hash.Hash
	n *int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	*c.n += int64(len(p))
	return c.Hash.Write(p)
}

// errRecorder remembers the first error other than EOF that its reader returned.
type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
