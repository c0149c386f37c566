package layer

// API CONTRACT (stub; the implementation replaces the bodies, not the signatures).

import (
	"context"
	"io"
)

// ApplyStats reports what Apply wrote.
type ApplyStats struct {
	Bytes  int64 // content bytes of regular files
	Inodes int64 // entries created
}

// Apply unpacks an uncompressed OCI/Docker layer tar stream into dir, which
// must exist. Whiteouts become overlayfs whiteouts (".wh.x" → char device 0:0
// named x; ".wh..wh..opq" → xattr trusted.overlay.opaque=y on the directory).
// Any entry that would land outside dir (.., absolute paths, through a symlink,
// a hard link to outside) is rejected with an error wrapping
// errdefs.ErrInvalidArgument, and nothing is written outside dir. Apply reads r
// to the end of the tar archive only; the caller drains any trailer.
func Apply(ctx context.Context, dir string, r io.Reader) (ApplyStats, error) {
	return ApplyStats{}, errStub
}
