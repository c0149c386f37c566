package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Probes outside any test directory that the escape seeds aim at.
var fuzzProbes = []string{"/etc/cradle-fuzz-pwned", "/tmp/cradle-fuzz-pwned"}

func fuzzSeeds(tb testing.TB) [][]byte {
	dev := func(typ byte, name string) tent {
		return tent{Header: tar.Header{Typeflag: typ, Name: name, Mode: 0o644, Devmajor: 1, Devminor: 3}}
	}
	sets := [][]tent{
		{dirEnt("etc"), reg("etc/hosts", "127.0.0.1 localhost"), symEnt("bin/sh", "/bin/busybox"), linkEnt("etc/h2", "etc/hosts")},
		{dirEnt("d"), reg("d/.wh.x", ""), reg("d/.wh..wh..opq", ""), reg(".wh..wh.plnk/1", "")},
		{reg("a", "1"), dirEnt("a"), reg("a/b", "2"), reg("a", "3"), symEnt("a", "b")},
		{dev(tar.TypeChar, "c"), dev(tar.TypeBlock, "b"), dev(tar.TypeFifo, "f"), reg("f/x", "")},
		{withXattr(withXattr(dirEnt("x"), "user.a", "b"), "trusted.overlay.opaque", "y")},
		{reg(".wh.d", ""), dirEnt("d"), reg("d/x", ""), reg(".wh.d", ""), reg("f", ""), reg(".wh.f", ""), reg(".wh.e", ""), reg("e/y", "")},
		// Escapes: the layer is base/a/layer, the canary base/canary.
		{reg("../../canary/pwned", "x")},
		{reg("/../../canary/pwned", "x")},
		{symEnt("link", "../../canary"), reg("link/pwned", "x")},
		{symEnt("link", "../../canary"), reg("link/secret", "x")},
		{symEnt("link", "../../canary"), reg("link/.wh.secret", "")},
		{symEnt("link", "../../canary"), linkEnt("h", "link/secret")},
		{symEnt("link", "../../canary/secret"), reg("link", "x"), linkEnt("h", "link")},
		{symEnt("link", "/etc"), reg("link/cradle-fuzz-pwned", "x")},
		{symEnt("link", "/tmp"), dirEnt("link/cradle-fuzz-pwned")},
		{symEnt("l1", "."), symEnt("l2", "l1/.."), reg("l2/canary/pwned", "")},
		{symEnt("loop", "loop"), reg("loop/x", "")},
		{linkEnt("h", "../../canary/secret")},
	}
	var seeds [][]byte
	for _, s := range sets {
		seeds = append(seeds, buildTar(tb, s...))
	}
	return append(seeds, sparseTar("s", 4<<20, map[int64]string{1 << 20: "x"}, []int64{1 << 20}))
}

// FuzzApply checks that no archive makes Apply panic or touch anything
// outside its directory, that it fails only with InvalidArgument (or a
// truncated stream), and that whatever it reports success for stays inside
// and was counted.
func FuzzApply(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Sparse entries may declare far more than the input holds; keep
		// iterations quick (TestApplySparseCancel covers the huge ones).
		if declaredBytes(data) > 16<<20 {
			t.Skip("declares too much content for a fuzz iteration")
		}
		base := t.TempDir()
		canary := filepath.Join(base, "canary")
		dir := filepath.Join(base, "a", "layer")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(canary, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(canary, "secret"), []byte("s"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, canary)

		st, err := Apply(context.Background(), dir, bytes.NewReader(data))

		if d := diffSnapshots(before, snapshot(t, canary)); d != "" {
			t.Fatalf("canary changed (Apply err %v):\n%s", err, d)
		}
		for parent, want := range map[string][]string{base: {"a", "canary"}, filepath.Join(base, "a"): {"layer"}} {
			if got := names(t, parent); !slices.Equal(got, want) {
				t.Fatalf("%s holds %v, want %v", parent, got, want)
			}
		}
		for _, p := range fuzzProbes {
			if _, err := os.Lstat(p); err == nil {
				os.RemoveAll(p)
				t.Fatalf("%s was created", p)
			}
		}
		if err != nil {
			// Bytes alone can only be malformed or hostile, never a
			// failure of the runtime: the caller's fault, said clearly.
			if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		// Everything in the layer was created by Apply and counted.
		var found int64
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != dir {
				found++
			}
			return nil
		})
		if found > st.Inodes {
			t.Fatalf("layer holds %d entries, Apply reports %d created", found, st.Inodes)
		}
	})
}

func names(t *testing.T, dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// declaredBytes sums the sizes the archive's headers announce, which for
// sparse entries can be far more than the input holds.
func declaredBytes(data []byte) int64 {
	tr := tar.NewReader(bytes.NewReader(data))
	var n int64
	for {
		h, err := tr.Next()
		if err != nil {
			return n
		}
		if h.Size > 0 {
			n += h.Size
		}
		if n < 0 {
			return 1 << 62
		}
	}
}
