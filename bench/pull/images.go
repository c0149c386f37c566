package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// benchImage is one image the benchmark pulls, with its targets.
type benchImage struct {
	name     string // synthetic or debian
	repo     string // repository in the registry
	img      *builtImage
	build    time.Duration
	describe []string // header lines about what it holds
	ceiling  float64  // registry MiB/s for its layers

	// Targets; 0 means none. throughput is a ratio to reach, wall and cpu
	// ratios to stay at or under.
	throughput, wall, cpu float64
}

// buildImages builds the images o asks for, synthetic first.
func buildImages(o options) ([]*benchImage, error) {
	var out []*benchImage
	if o.wantsImage("synthetic") {
		fmt.Fprintln(os.Stderr, "building the synthetic image ...")
		t0 := time.Now()
		img, err := buildImage(imageSpec{Layers: o.layers, Size: o.size, RandomFraction: o.randomFraction, Seed: 1})
		if err != nil {
			return nil, fmt.Errorf("build synthetic image: %w", err)
		}
		out = append(out, &benchImage{
			name: "synthetic", repo: "bench/big", img: img, build: time.Since(t0),
			describe: []string{fmt.Sprintf("generated files of log-uniform sizes (%.0f%% random bytes, %.0f%% text)",
				100*o.randomFraction, 100*(1-o.randomFraction))},
			throughput: o.target,
		})
	}
	if o.wantsImage("debian") {
		fmt.Fprintln(os.Stderr, "building the debian image from this machine's package files ...")
		t0 := time.Now()
		img, missing, err := buildDebian()
		if err != nil {
			return nil, fmt.Errorf("build debian image: %w", err)
		}
		bi := &benchImage{
			name: "debian", repo: "bench/debian", img: img, build: time.Since(t0),
			describe: []string{"files under /usr that dpkg lists for fixed sets of packages (base, net, headers, python, modules), host modes, owners and mtimes"},
			wall:     o.targetWall, cpu: o.targetCPU,
		}
		if len(missing) > 0 {
			bi.describe = append(bi.describe, fmt.Sprintf("packages not installed here, left out: %s", strings.Join(missing, " ")))
		}
		if err := checkDebian(img); err != nil {
			return nil, fmt.Errorf("debian image: %w (install the packages named in bench/pull/debian.go)", err)
		}
		out = append(out, bi)
	}
	return out, nil
}

// Minimums of the debian image: a realistic pull is many files, 100 MB, and
// a base layer of at least 50 MB.
const (
	minDebianFiles      = 10000
	minDebianContent    = 100e6
	minDebianLayers     = 5
	minDebianBigLayer   = 50e6
	minDebianBigLayerOf = "content (uncompressed)"
)

func checkDebian(img *builtImage) error {
	big := int64(0)
	for _, l := range img.LayerSizes {
		big = max(big, l.Content)
	}
	switch {
	case img.Files < minDebianFiles:
		return fmt.Errorf("only %d files, want at least %d", img.Files, minDebianFiles)
	case img.Uncompressed < minDebianContent:
		return fmt.Errorf("only %d bytes, want at least %.0f", img.Uncompressed, minDebianContent)
	case len(img.Layers) < minDebianLayers:
		return fmt.Errorf("only %d layers, want at least %d", len(img.Layers), minDebianLayers)
	case big < minDebianBigLayer:
		return fmt.Errorf("largest layer holds %d bytes of %s, want at least %.0f", big, minDebianBigLayerOf, minDebianBigLayer)
	}
	return nil
}
