package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	"golang.org/x/sync/errgroup"
)

const imageTag = "1"

// startRegistry serves the images from an in-process registry on 127.0.0.1.
func startRegistry(images []*benchImage) (*testkit.Registry, error) {
	reg, err := testkit.StartRegistry()
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	for _, bi := range images {
		if _, err := reg.Push(bi.repo+":"+imageTag, bi.img.Image); err != nil {
			reg.Close()
			return nil, err
		}
	}
	return reg, nil
}

// registryCeiling is how fast the registry serves the image's layers when
// all are fetched at once and thrown away, in MiB/s (best of three): an upper
// bound on pull throughput that shows whether the registry limits the result.
func registryCeiling(ctx context.Context, reg *testkit.Registry, bi *benchImage) (float64, error) {
	img := bi.img
	client := &http.Client{Transport: reg.Transport(), Timeout: 5 * time.Minute}
	defer client.CloseIdleConnections()
	best := 0.0
	for range 3 {
		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		for _, d := range img.Layers {
			g.Go(func() error {
				req, err := http.NewRequestWithContext(gctx, http.MethodGet, reg.URL+"/v2/"+bi.repo+"/blobs/"+d.String(), nil)
				if err != nil {
					return err
				}
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("GET blob %s: %s", d, resp.Status)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
		best = max(best, mibPerSec(img.Compressed, time.Since(start)))
	}
	return best, nil
}
