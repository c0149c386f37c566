package image

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/tracing"
	"github.com/opencontainers/go-digest"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sync/errgroup"
)

// puller is one pull of one reference.
type puller struct {
	s        *Service
	ref      Ref
	rem      *remote
	res      resolved
	chainIDs []digest.Digest
	wd       *watchdog
	sem      chan struct{} // bounds concurrent downloads
	progress *progressTracker

	// queued counts the layers this pull fills that wait for a download
	// slot. Other pulls may wait for them in turn; while this pull moves,
	// they are not stalled.
	qmu    sync.Mutex
	queued map[digest.Digest]int
}

// pull does the work behind Pull, once per flight. On failure every layer
// reference it took is released and no record is written.
func (s *Service) pull(ctx context.Context, ref Ref, creds *credentials, report func(Progress)) (Image, error) {
	img, err := s.doPull(ctx, ref, creds, report)
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	return img, nil
}

func (s *Service) doPull(parent context.Context, ref Ref, creds *credentials, report func(Progress)) (Image, error) {
	reg := s.reg.Load()
	hosts, err := reg.hosts.Lookup(ref.Domain)
	if err != nil {
		return Image{}, err
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	p := &puller{
		s:   s,
		ref: ref,
		rem: newRemote(hosts, ref, creds),
		wd:  startWatchdog(reg.stall, cancel),
		sem: make(chan struct{}, reg.maxConcurrent),
	}
	defer p.wd.close()
	p.rem.onRead = p.wd.progress

	rctx, span := tracing.Start(ctx, "image.resolve", attribute.String("image.ref", ref.String()))
	p.res, err = p.rem.resolve(rctx, s.cfg.Platform)
	tracing.End(span, err)
	if err != nil {
		return Image{}, stallOr(ctx, err)
	}
	p.wd.progress()
	p.chainIDs = layer.ChainIDs(p.res.config.RootFS.DiffIDs)
	p.progress = newProgressTracker(ref.String(), p.res.manifest.Layers, report)
	// A layer download may outlive this pull when another pull waits for
	// it; its progress is no longer ours to report.
	defer p.progress.stop()

	acquired, err := p.fetchLayers(ctx)
	if err != nil {
		s.release(acquired)
		return Image{}, stallOr(ctx, err)
	}
	img := p.image()
	stored, err := s.commit(img)
	if err != nil {
		s.release(acquired)
		return Image{}, err
	}
	return stored, nil
}

// stallOr reports the watchdog's verdict rather than the "context canceled"
// it caused deep inside the pull.
func stallOr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errdefs.ErrDeadlineExceeded) {
		return cause
	}
	return err
}

func (p *puller) image() Image {
	res := p.res
	size := res.configSize
	for _, l := range res.manifest.Layers {
		size += l.Size
	}
	img := Image{
		ID:                res.configDesc.Digest,
		Size:              size,
		Config:            res.config,
		ChainIDs:          p.chainIDs,
		PulledAt:          time.Now().UTC(),
		ManifestDigest:    res.manifestDigest,
		ManifestMediaType: res.manifestMediaType,
		RepoDigests:       []string{p.ref.Name + "@" + res.topDigest.String()},
	}
	if t := p.ref.TagRef(); t != "" {
		img.RepoTags = []string{t}
	}
	return img
}

// fetchLayers ensures every layer in the layer store, in parallel, and returns
// the chain IDs it holds a reference on (all of them on success).
func (p *puller) fetchLayers(ctx context.Context) ([]digest.Digest, error) {
	n := len(p.chainIDs)
	got := make([]bool, n)
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		g.Go(func() error {
			if err := p.ensure(gctx, i); err != nil {
				return err
			}
			got[i] = true
			return nil
		})
	}
	err := g.Wait()
	var acquired []digest.Digest
	for i, ok := range got {
		if ok {
			acquired = append(acquired, p.chainIDs[i])
		}
	}
	return acquired, err
}

// ensure takes a reference on layer i, unpacking it if the store lacks it.
// The unpack may be another pull's (the store runs one per chain ID); its
// bytes feed this pull's watchdog too, so waiting on a moving download is no
// stall and waiting on a stalled one is.
func (p *puller) ensure(ctx context.Context, i int) error {
	var parent digest.Digest
	if i > 0 {
		parent = p.chainIDs[i-1]
	}
	unwatch := p.s.watchers.watch(p.chainIDs[i], p.wd)
	defer unwatch()
	const attempts = 3
	for attempt := 1; ; attempt++ {
		var filled atomic.Bool
		_, err := p.s.layers.Ensure(ctx, p.chainIDs[i], parent, func(fctx context.Context, dir string) (layer.Info, error) {
			filled.Store(true)
			return p.fill(fctx, i, dir)
		})
		if err == nil {
			crashpoint.Hit(crashpoint.PullLayerCommited)
			if !filled.Load() {
				p.progress.layerPresent(i)
				p.s.cfg.Observer.LayerReused()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctxError(ctx)
		}
		// Another pull's unpack of this layer failed for a reason of its
		// own (say, its mirror sent garbage): try with our hosts.
		if filled.Load() || attempt == attempts {
			return err
		}
	}
}

// fill downloads layer i into dir. It runs under the layer store's context,
// which lives while any pull still waits for this layer.
func (p *puller) fill(ctx context.Context, i int, dir string) (_ layer.Info, err error) {
	chainID := p.chainIDs[i]
	p.queue(chainID, 1)
	select {
	case p.sem <- struct{}{}:
		p.queue(chainID, -1)
		defer func() { <-p.sem }()
	case <-ctx.Done():
		p.queue(chainID, -1)
		return layer.Info{}, ctxError(ctx)
	}
	desc := p.res.manifest.Layers[i]
	what := "layer " + desc.Digest.String()
	// The blob streams into the unpack, so the download span covers the
	// request and the transfer, the unpack span (its child) the transfer
	// from the first byte on, decompression and applying the files.
	ctx, span := tracing.Start(ctx, "image.layer.download",
		attribute.String("image.layer.digest", desc.Digest.String()), attribute.Int64("image.layer.size", desc.Size))
	defer func() { tracing.End(span, err) }()
	resp, err := p.rem.get(ctx, CapPull, "/"+p.ref.Path+"/blobs/"+desc.Digest.String(), "", what)
	if err != nil {
		return layer.Info{}, err
	}
	defer resp.Body.Close()
	u := unpacker{
		desc:   desc,
		diffID: p.res.config.RootFS.DiffIDs[i],
		what:   what,
		onRead: func(n int) {
			crashpoint.Hit(crashpoint.PullMidLayer)
			p.s.watchers.poke(chainID)
			p.pokeQueued()
			p.progress.add(n)
			p.s.cfg.Observer.PullBytes(n)
		},
	}
	uctx, uspan := tracing.Start(ctx, "image.layer.unpack", attribute.String("image.layer.diff_id", u.diffID.String()))
	info, err := u.unpack(uctx, dir, resp.Body)
	tracing.End(uspan, err)
	if err != nil {
		return layer.Info{}, err
	}
	p.progress.layerFetched()
	return info, nil
}

func (p *puller) queue(chainID digest.Digest, delta int) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if p.queued == nil {
		p.queued = map[digest.Digest]int{}
	}
	if p.queued[chainID] += delta; p.queued[chainID] <= 0 {
		delete(p.queued, chainID)
	}
}

// pokeQueued passes this pull's progress on to the pulls waiting for a layer
// it has yet to start: their wait is a queue that moves, not a stall.
func (p *puller) pokeQueued() {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	for id := range p.queued {
		p.s.watchers.poke(id)
	}
}

// release drops the pull's layer references; layers nobody else holds go.
func (s *Service) release(chainIDs []digest.Digest) {
	if len(chainIDs) == 0 {
		return
	}
	if err := s.layers.Release(chainIDs...); err != nil {
		s.log.Warn("releasing layers failed; they are pruned at the next start", "err", err)
	}
}
