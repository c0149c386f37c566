package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tent is one entry of a test tarball.
type tent struct {
	tar.Header
	Body string
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func reg(name, body string) tent {
	return tent{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: testTime}, Body: body}
}

func dirEnt(name string) tent {
	return tent{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: testTime}}
}

func symEnt(name, target string) tent {
	return tent{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func linkEnt(name, target string) tent {
	return tent{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: testTime}}
}

func withMode(e tent, mode int64) tent { e.Mode = mode; return e }

func withXattr(e tent, name, value string) tent {
	if e.PAXRecords == nil {
		e.PAXRecords = map[string]string{}
	}
	e.PAXRecords[paxXattrPrefix+name] = value
	return e
}

// buildTar writes ents as a PAX tarball (sizes come from the bodies).
func buildTar(tb testing.TB, ents ...tent) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			tb.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func applyEnts(t *testing.T, dir string, ents ...tent) (ApplyStats, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(buildTar(t, ents...)))
}

func mustApply(t *testing.T, dir string, ents ...tent) ApplyStats {
	t.Helper()
	st, err := applyEnts(t, dir, ents...)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func lstat(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// snapshot describes every entry under dir (type, mode, owner, size, mtime,
// link target, content hash), so two snapshots differ if anything changed.
func snapshot(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d mtime=%d.%d", st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatalf("snapshot %s: %v", dir, err)
	}
	return out
}

func diffSnapshots(before, after map[string]string) string {
	var d bytes.Buffer
	for k, v := range before {
		if w, ok := after[k]; !ok {
			fmt.Fprintf(&d, "removed %s\n", k)
		} else if w != v {
			fmt.Fprintf(&d, "changed %s: %s -> %s\n", k, v, w)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&d, "added %s\n", k)
		}
	}
	return d.String()
}

// rawHeader encodes one ustar header block by hand, for archives that
// archive/tar refuses to write (PAX sparse files, odd type flags).
func rawHeader(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", testTime.Unix()))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for {
		s := strconv.Itoa(n) + rec
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}

// sparseTar is a PAX 1.0 sparse file "name" of size realSize with the given
// data fragments at their offsets (ascending, non-overlapping).
func sparseTar(name string, realSize int64, frags map[int64]string, offsets []int64) []byte {
	smap := strconv.Itoa(len(offsets)) + "\n"
	var data string
	for _, off := range offsets {
		smap += fmt.Sprintf("%d\n%d\n", off, len(frags[off]))
		data += frags[off]
	}
	return rawSparseTar(name, realSize, smap, data)
}

// rawSparseTar is a PAX 1.0 sparse file with the sparse map smap (its text
// form: count, then offset and length per fragment) and data as written,
// whether they agree or not.
func rawSparseTar(name string, realSize int64, smap, data string) []byte {
	pax := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	body := append(pad512([]byte(smap)), data...)
	var out []byte
	out = append(out, rawHeader("PaxHeaders/"+name, tar.TypeXHeader, int64(len(pax)))...)
	out = append(out, pad512([]byte(pax))...)
	out = append(out, rawHeader("GNUSparseFile.0/"+name, tar.TypeReg, int64(len(body)))...)
	out = append(out, pad512(body)...)
	return append(out, make([]byte, 1024)...)
}

func isWhiteoutFile(t *testing.T, path string) bool {
	t.Helper()
	st := lstat(t, path)
	return st.Mode&syscall.S_IFMT == syscall.S_IFCHR && st.Rdev == 0
}

func isOpaque(t *testing.T, path string) bool {
	t.Helper()
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(path, overlayOpaque, buf)
	if err == unix.ENODATA {
		return false
	}
	if err != nil {
		t.Fatalf("getxattr %s: %v", path, err)
	}
	return string(buf[:n]) == "y"
}
