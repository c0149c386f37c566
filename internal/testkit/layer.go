package testkit

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"path"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FixedTime is the modification time of entries that set none, and the
// creation time of images: fixed so that equal inputs give equal digests.
var FixedTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Entry is one member of a layer tarball. Name and Linkname are written
// verbatim, so an Entry can describe a hostile archive ("../x", "/abs").
type Entry struct {
	Name     string            // path inside the layer
	Type     byte              // archive/tar type flag; 0 means tar.TypeReg
	Mode     int64             // permission bits; 0 means 0644 for files, 0755 for dirs, 0777 for symlinks
	UID, GID int               // numeric owner
	Content  []byte            // body of a regular file
	Linkname string            // symlink or hard-link target
	Xattrs   map[string]string // written as PAX SCHILY.xattr.<key> records
	ModTime  time.Time         // zero means FixedTime
	Devmajor int64             // for character and block devices
	Devminor int64
}

// Dir, File, Symlink and Hardlink are shorthands for the common entries.
func Dir(name string) Entry { return Entry{Name: name, Type: tar.TypeDir} }

// File is a regular file with mode 0644.
func File(name, content string) Entry { return Entry{Name: name, Content: []byte(content)} }

// Symlink is a symbolic link name -> target.
func Symlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeSymlink, Linkname: target}
}

// Hardlink is a hard link name -> target (a path inside the layer).
func Hardlink(name, target string) Entry {
	return Entry{Name: name, Type: tar.TypeLink, Linkname: target}
}

// Whiteout deletes p from lower layers (OCI ".wh." marker file).
func Whiteout(p string) Entry {
	return Entry{Name: path.Join(path.Dir(p), ".wh."+path.Base(p))}
}

// OpaqueWhiteout hides everything lower layers put in dir.
func OpaqueWhiteout(dir string) Entry {
	return Entry{Name: path.Join(dir, ".wh..wh..opq")}
}

func (e Entry) header() (*tar.Header, error) {
	if e.Name == "" {
		return nil, errdefs.InvalidArgument("testkit: tar entry with empty name")
	}
	typ := e.Type
	if typ == 0 || typ == tar.TypeRegA {
		typ = tar.TypeReg
	}
	if typ != tar.TypeReg && len(e.Content) > 0 {
		return nil, errdefs.InvalidArgument("testkit: tar entry %q of type %q cannot have content", e.Name, typ)
	}
	mode := e.Mode
	if mode == 0 {
		switch typ {
		case tar.TypeDir:
			mode = 0o755
		case tar.TypeSymlink:
			mode = 0o777
		default:
			mode = 0o644
		}
	}
	mtime := e.ModTime
	if mtime.IsZero() {
		mtime = FixedTime
	}
	h := &tar.Header{
		Typeflag: typ,
		Name:     e.Name,
		Linkname: e.Linkname,
		Size:     int64(len(e.Content)),
		Mode:     mode,
		Uid:      e.UID,
		Gid:      e.GID,
		ModTime:  mtime.UTC().Truncate(time.Second),
		Devmajor: e.Devmajor,
		Devminor: e.Devminor,
	}
	if len(e.Xattrs) > 0 {
		h.Format = tar.FormatPAX
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
	}
	return h, nil
}

// writeTar writes entries, in order, as a complete tar stream. The writer
// sorts PAX records itself, so the output depends only on entries.
func writeTar(w io.Writer, entries []Entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h, err := e.header()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return errdefs.InvalidArgument("testkit: tar entry %q: %v", e.Name, err)
		}
		if _, err := tw.Write(e.Content); err != nil {
			return fmt.Errorf("testkit: tar entry %q: %w", e.Name, err)
		}
	}
	return tw.Close()
}

// TarBytes returns entries as an uncompressed tar archive. Equal entries
// always give equal bytes.
func TarBytes(entries []Entry) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeTar(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewLayer builds a layer from entries with the OCI media type of c.
func NewLayer(entries []Entry, c Compression) (v1.Layer, error) {
	return buildLayer(c, defaultLevel, 0, func(w io.Writer) error { return writeTar(w, entries) })
}

// LayerFromTar wraps a ready tar stream (for archives Entry cannot express)
// as a layer compressed with c.
func LayerFromTar(tarball []byte, c Compression) (v1.Layer, error) {
	return buildLayer(c, defaultLevel, int64(len(tarball)), func(w io.Writer) error {
		_, err := w.Write(tarball)
		return err
	})
}

// buildLayer streams the tar produced by writeTar through the DiffID hash and
// the compressor in one pass, keeping only the compressed blob in memory.
func buildLayer(c Compression, level compressionLevel, sizeHint int64, writeTar func(io.Writer) error) (v1.Layer, error) {
	mt, err := c.mediaType(false)
	if err != nil {
		return nil, err
	}
	var blob bytes.Buffer
	// Growing a buffer of hundreds of MB step by step costs more than
	// generating the content.
	blob.Grow(int(sizeHint))
	blobHash := sha256.New()
	cw, err := c.compressor(io.MultiWriter(&blob, blobHash), level)
	if err != nil {
		return nil, err
	}
	diffHash := sha256.New()
	if err := writeTar(io.MultiWriter(cw, diffHash)); err != nil {
		return nil, err
	}
	if err := cw.Close(); err != nil {
		return nil, fmt.Errorf("testkit: compress layer: %w", err)
	}
	return &memLayer{
		blob:      blob.Bytes(),
		digest:    sum(blobHash),
		diffID:    sum(diffHash),
		mediaType: mt,
		comp:      c,
	}, nil
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}
