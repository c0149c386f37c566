package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// benchTar is a layer shaped like a distro base: many small files in a
// few hundred directories, some symlinks, a few large files.
func benchTar(b *testing.B) ([]byte, int64) {
	var ents []tent
	var size int64
	for d := range 200 {
		dir := fmt.Sprintf("usr/share/pkg%03d", d)
		ents = append(ents, dirEnt(dir))
		for f := range 25 {
			body := strings.Repeat("x", 512+(d*25+f)%8192)
			size += int64(len(body))
			ents = append(ents, reg(fmt.Sprintf("%s/file%02d", dir, f), body))
		}
		ents = append(ents, symEnt(dir+"/link", "file00"))
	}
	for i := range 4 {
		body := strings.Repeat("y", 8<<20)
		size += int64(len(body))
		ents = append(ents, reg(fmt.Sprintf("usr/lib/big%d", i), body))
	}
	return buildTar(b, ents...), size
}

func BenchmarkApply(b *testing.B) {
	data, size := benchTar(b)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dir, err := os.MkdirTemp("", "bench-apply-")
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Apply(context.Background(), dir, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
