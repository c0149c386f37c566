package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// imageSpec describes the benchmark image. Its content looks like a real
// image to both sides of a pull: many files of spread-out sizes, part
// incompressible (binaries, already-compressed assets) and part text that gzip
// shrinks several times, so decompression does real work.
type imageSpec struct {
	Layers         int
	Size           int64   // file content of all layers together, uncompressed
	RandomFraction float64 // share of Size that is pseudo-random bytes
	Seed           int64   // equal specs give equal digests
}

// Sizes of the files: log-uniform between these bounds, like the long tail of
// small files and few big ones of a distribution image.
const (
	minFileSize = 512
	maxFileSize = 2 << 20
	filesPerDir = 32
	vocabularyN = 4096
)

type fileSpec struct {
	name   string
	size   int64
	random bool
}

// planLayer lays out size bytes of files for layer n: names, sizes and kinds,
// with about randomFraction of the bytes random. The sizes add up to size.
func planLayer(n int, size int64, randomFraction float64, rng *rand.Rand) []fileSpec {
	var files []fileSpec
	var randomBytes, total int64
	lo, hi := math.Log(minFileSize), math.Log(maxFileSize)
	for total < size {
		s := min(int64(math.Exp(lo+rng.Float64()*(hi-lo))), size-total)
		// Whichever kind is behind its share gets the next file, so the mix
		// stays close to randomFraction at every layer size.
		random := float64(randomBytes) <= randomFraction*float64(total)
		if randomFraction <= 0 {
			random = false
		}
		i := len(files)
		files = append(files, fileSpec{
			name:   fmt.Sprintf("bench/l%d/d%03d/f%04d", n, i/filesPerDir, i),
			size:   s,
			random: random,
		})
		if random {
			randomBytes += s
		}
		total += s
	}
	return files
}

// builtImage is a benchmark image and what a pull of it moves.
type builtImage struct {
	Image        v1.Image
	Files        int   // files, symlinks and hard links (not directories)
	Entries      int   // tar entries, directories included
	Uncompressed int64 // file content
	Compressed   int64 // layer blobs
	Transfer     int64 // manifest + config + layer blobs: the bytes a pull downloads
	Layers       []v1.Hash
	LayerSizes   []layerSize
	Digest       v1.Hash // of the manifest: equal digests, equal images
}

// layerSize is what one layer holds.
type layerSize struct {
	Compressed, Content int64
	Files               int
}

// addLayer counts layer l (content bytes of files, files, tar entries).
func (b *builtImage) addLayer(l v1.Layer, content int64, files, entries int) error {
	sz, err := l.Size()
	if err != nil {
		return err
	}
	d, err := l.Digest()
	if err != nil {
		return err
	}
	b.Files += files
	b.Entries += entries
	b.Uncompressed += content
	b.Compressed += sz
	b.Layers = append(b.Layers, d)
	b.LayerSizes = append(b.LayerSizes, layerSize{Compressed: sz, Content: content, Files: files})
	return nil
}

// finish makes the image of layers with config cfg.
func (b *builtImage) finish(cfg testkit.ImageConfig, layers []v1.Layer) error {
	img, err := testkit.NewImage(cfg, layers...)
	if err != nil {
		return err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if b.Digest, err = img.Digest(); err != nil {
		return err
	}
	b.Image = img
	b.Transfer = b.Compressed + int64(len(manifest)+len(config))
	return nil
}

// buildImage builds the image spec describes, one layer at a time so that
// only one layer's uncompressed content is in memory at once.
func buildImage(spec imageSpec) (*builtImage, error) {
	if spec.Layers < 1 {
		return nil, fmt.Errorf("need at least one layer, got %d", spec.Layers)
	}
	if spec.Size < int64(spec.Layers) {
		return nil, fmt.Errorf("size %d is too small for %d layers", spec.Size, spec.Layers)
	}
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x62656e6368))
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	noise := rand.NewChaCha8(seed)
	text := newTextGen(rng)

	out := &builtImage{}
	var layers []v1.Layer
	left := spec.Size
	for n := range spec.Layers {
		size := left / int64(spec.Layers-n)
		left -= size
		plan := planLayer(n, size, spec.RandomFraction, rng)
		entries := make([]testkit.Entry, 0, len(plan)+len(plan)/filesPerDir+3)
		entries = append(entries, testkit.Dir("bench/"), testkit.Dir(fmt.Sprintf("bench/l%d/", n)))
		for i, f := range plan {
			if i%filesPerDir == 0 {
				entries = append(entries, testkit.Dir(fmt.Sprintf("bench/l%d/d%03d/", n, i/filesPerDir)))
			}
			content := make([]byte, f.size)
			if f.random {
				_, _ = noise.Read(content) // ChaCha8.Read never fails
			} else {
				text.fill(content)
			}
			entries = append(entries, testkit.Entry{Name: f.name, Content: content})
		}
		l, err := testkit.NewLayer(entries, testkit.Gzip)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", n, err)
		}
		if err := out.addLayer(l, size, len(plan), len(entries)); err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	if err := out.finish(testkit.ImageConfig{Cmd: []string{"/bin/true"}}, layers); err != nil {
		return nil, err
	}
	return out, nil
}

// textGen writes lines of words from a fixed random vocabulary: text with
// the redundancy of source code, docs and configs (gzip -6 shrinks it about
// 2.5×), made at hundreds of MB/s.
type textGen struct {
	vocab [][]byte
	rng   *rand.Rand
}

func newTextGen(rng *rand.Rand) *textGen {
	g := &textGen{rng: rng, vocab: make([][]byte, vocabularyN)}
	for i := range g.vocab {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = 'a' + byte(rng.IntN(26))
		}
		g.vocab[i] = w
	}
	return g
}

// fill overwrites b with text.
func (g *textGen) fill(b []byte) {
	col := 0
	for i := 0; i < len(b); {
		// A skewed pick (min of two) makes some words common, as in prose.
		w := g.vocab[min(g.rng.IntN(vocabularyN), g.rng.IntN(vocabularyN))]
		i += copy(b[i:], w)
		col += len(w)
		if i == len(b) {
			break
		}
		if col > 72 {
			b[i], col = '\n', 0
		} else {
			b[i] = ' '
			col++
		}
		i++
	}
}
