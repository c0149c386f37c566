package testkit

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// readTar returns the headers and bodies of a tar stream, in order.
func readTar(t testing.TB, r io.Reader) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	tr := tar.NewReader(r)
	var hdrs []*tar.Header
	bodies := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs, bodies
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		hdrs = append(hdrs, h)
		bodies[h.Name] = b
	}
}

func layerTar(t testing.TB, l v1.Layer) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readTar(t, rc)
}

func TestTarBytesWritesEntriesVerbatimWithDefaults(t *testing.T) {
	mtime := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	entries := []Entry{
		Dir("etc/"),
		File("etc/hostname", "box\n"),
		{Name: "bin/tool", Content: []byte("x"), Mode: 0o4755, UID: 1000, GID: 2000, ModTime: mtime},
		Symlink("bin/sh", "busybox"),
		Hardlink("bin/sh2", "bin/tool"),
		{Name: "cap", Content: []byte("c"), Xattrs: map[string]string{"security.capability": "\x01\x02", "user.a": "b"}},
		{Name: "dev/null", Type: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
		{Name: "../escape", Content: []byte("bad")},
		{Name: "/abs", Content: []byte("bad")},
	}
	b, err := TarBytes(entries)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, bodies := readTar(t, bytes.NewReader(b))
	if len(hdrs) != len(entries) {
		t.Fatalf("got %d entries, want %d", len(hdrs), len(entries))
	}
	for i, h := range hdrs {
		if h.Name != entries[i].Name {
			t.Errorf("entry %d name = %q, want %q (verbatim)", i, h.Name, entries[i].Name)
		}
	}
	check := func(i int, typ byte, mode int64) {
		t.Helper()
		if hdrs[i].Typeflag != typ || hdrs[i].Mode != mode {
			t.Errorf("%s: type %q mode %o, want %q %o", hdrs[i].Name, hdrs[i].Typeflag, hdrs[i].Mode, typ, mode)
		}
	}
	check(0, tar.TypeDir, 0o755)
	check(1, tar.TypeReg, 0o644)
	check(2, tar.TypeReg, 0o4755)
	check(3, tar.TypeSymlink, 0o777)
	check(4, tar.TypeLink, 0o644)
	check(6, tar.TypeChar, 0o666)
	if !hdrs[1].ModTime.Equal(FixedTime) || !hdrs[2].ModTime.Equal(mtime) {
		t.Errorf("mtimes = %v, %v; want %v, %v", hdrs[1].ModTime, hdrs[2].ModTime, FixedTime, mtime)
	}
	if hdrs[2].Uid != 1000 || hdrs[2].Gid != 2000 {
		t.Errorf("owner = %d:%d", hdrs[2].Uid, hdrs[2].Gid)
	}
	if hdrs[3].Linkname != "busybox" || hdrs[4].Linkname != "bin/tool" {
		t.Errorf("link targets = %q, %q", hdrs[3].Linkname, hdrs[4].Linkname)
	}
	if got := hdrs[5].PAXRecords["SCHILY.xattr.security.capability"]; got != "\x01\x02" {
		t.Errorf("xattr record = %q", got)
	}
	if got := hdrs[5].PAXRecords["SCHILY.xattr.user.a"]; got != "b" {
		t.Errorf("xattr record user.a = %q", got)
	}
	if hdrs[6].Devmajor != 1 || hdrs[6].Devminor != 3 {
		t.Errorf("device = %d,%d", hdrs[6].Devmajor, hdrs[6].Devminor)
	}
	if string(bodies["etc/hostname"]) != "box\n" {
		t.Errorf("body = %q", bodies["etc/hostname"])
	}

	again, err := TarBytes(entries)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Error("TarBytes is not deterministic")
	}
}

func TestTarBytesRejectsBadEntries(t *testing.T) {
	for name, e := range map[string]Entry{
		"empty name":      {Content: []byte("x")},
		"symlink content": {Name: "l", Type: tar.TypeSymlink, Linkname: "x", Content: []byte("x")},
		"dir content":     {Name: "d/", Type: tar.TypeDir, Content: []byte("x")},
	} {
		if _, err := TarBytes([]Entry{e}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
		if _, err := NewLayer([]Entry{e}, Gzip); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: NewLayer err = %v, want InvalidArgument", name, err)
		}
	}
	if _, err := NewLayer(nil, Compression(42)); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown compression: err = %v", err)
	}
}

func TestNewLayerCompressionsAndDigests(t *testing.T) {
	entries := []Entry{Dir("a/"), File("a/b", "hello")}
	tarball, err := TarBytes(entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c      Compression
		mt     types.MediaType
		decode func(io.Reader) (io.Reader, error)
	}{
		{Gzip, types.OCILayer, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{Zstd, types.OCILayerZStd, func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }},
		{Uncompressed, types.OCIUncompressedLayer, func(r io.Reader) (io.Reader, error) { return r, nil }},
	} {
		t.Run(tc.c.String(), func(t *testing.T) {
			l := MustLayer(t, entries, tc.c)
			if mt, _ := l.MediaType(); mt != tc.mt {
				t.Errorf("media type = %s, want %s", mt, tc.mt)
			}
			rc, _ := l.Compressed()
			blob, _ := io.ReadAll(rc)
			digest, _ := l.Digest()
			if want := fmt.Sprintf("sha256:%x", sha256.Sum256(blob)); digest.String() != want {
				t.Errorf("digest = %s, want %s", digest, want)
			}
			if size, _ := l.Size(); size != int64(len(blob)) {
				t.Errorf("size = %d, blob is %d", size, len(blob))
			}
			dec, err := tc.decode(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("blob is not %s: %v", tc.c, err)
			}
			raw, err := io.ReadAll(dec)
			if err != nil {
				t.Fatalf("decode %s: %v", tc.c, err)
			}
			if !bytes.Equal(raw, tarball) {
				t.Error("decoded blob differs from TarBytes")
			}
			diffID, _ := l.DiffID()
			if want := fmt.Sprintf("sha256:%x", sha256.Sum256(tarball)); diffID.String() != want {
				t.Errorf("diffID = %s, want %s", diffID, want)
			}
			rc, _ = l.Uncompressed()
			un, _ := io.ReadAll(rc)
			if !bytes.Equal(un, tarball) {
				t.Error("Uncompressed() differs from TarBytes")
			}
			again := MustLayer(t, entries, tc.c)
			if d2, _ := again.Digest(); d2 != digest {
				t.Errorf("layer digest not deterministic: %s vs %s", digest, d2)
			}
		})
	}
}

func TestWhiteoutEntries(t *testing.T) {
	if got := Whiteout("etc/motd").Name; got != "etc/.wh.motd" {
		t.Errorf("Whiteout = %q", got)
	}
	if got := Whiteout("top").Name; got != ".wh.top" {
		t.Errorf("Whiteout top-level = %q", got)
	}
	if got := OpaqueWhiteout("var/cache").Name; got != "var/cache/.wh..wh..opq" {
		t.Errorf("OpaqueWhiteout = %q", got)
	}
}

func TestRandomLayer(t *testing.T) {
	const size = 1<<20 + 7
	for _, c := range []Compression{Gzip, Zstd, Uncompressed} {
		t.Run(c.String(), func(t *testing.T) {
			l := MustRandomLayer(t, size, 1, c)
			hdrs, bodies := layerTar(t, l)
			var total int64
			files := 0
			for _, h := range hdrs {
				if h.Typeflag == tar.TypeReg {
					files++
					total += int64(len(bodies[h.Name]))
				}
			}
			if total != size || files < 2 {
				t.Errorf("content = %d bytes in %d files, want %d in several", total, files, size)
			}
			blobSize, _ := l.Size()
			if blobSize < size || blobSize > size+size/50+64<<10 {
				t.Errorf("blob size %d, want about %d", blobSize, size)
			}
			same := MustRandomLayer(t, size, 1, c)
			other := MustRandomLayer(t, size, 2, c)
			d1, _ := l.Digest()
			d2, _ := same.Digest()
			d3, _ := other.Digest()
			if d1 != d2 || d1 == d3 {
				t.Errorf("digests seed1=%s seed1=%s seed2=%s: want deterministic and seed-dependent", d1, d2, d3)
			}
		})
	}
	empty := MustRandomLayer(t, 0, 1, Gzip)
	if hdrs, _ := layerTar(t, empty); len(hdrs) == 0 {
		t.Error("empty random layer has no entries")
	}
	if _, err := RandomLayer(-1, 0, Gzip); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("negative size: err = %v", err)
	}
}

func BenchmarkRandomLayer(b *testing.B) {
	for _, c := range []Compression{Gzip, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(64 << 20)
			for i := 0; i < b.N; i++ {
				if _, err := RandomLayer(64<<20, int64(i), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestMaliciousLayersKeepHostileNames(t *testing.T) {
	want := map[string]string{
		"dotdot":             "../escape",
		"absolute-dotdot":    "/../../escape",
		"nested-dotdot":      "a/../../escape",
		"symlink-escape":     "link/escape",
		"symlink-abs-escape": "link/testkit-escape",
		"hardlink-escape":    "passwd",
	}
	layers := MaliciousLayers()
	if len(layers) != len(want) {
		t.Errorf("got %d malicious layers, want %d", len(layers), len(want))
	}
	for name, last := range want {
		entries, ok := layers[name]
		if !ok {
			t.Errorf("missing %q", name)
			continue
		}
		hdrs, _ := layerTar(t, MustLayer(t, entries, Gzip))
		if got := hdrs[len(hdrs)-1].Name; got != last {
			t.Errorf("%s: last entry %q, want %q", name, got, last)
		}
	}
	hdrs, _ := layerTar(t, MustLayer(t, layers["hardlink-escape"], Uncompressed))
	if hdrs[0].Typeflag != tar.TypeLink || hdrs[0].Linkname != "../../etc/passwd" {
		t.Errorf("hardlink-escape = %+v", hdrs[0])
	}
	hdrs, _ = layerTar(t, MustLayer(t, layers["symlink-escape"], Uncompressed))
	if hdrs[0].Typeflag != tar.TypeSymlink || hdrs[0].Linkname != "../.." {
		t.Errorf("symlink-escape link = %+v", hdrs[0])
	}
}
