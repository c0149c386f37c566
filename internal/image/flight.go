package image

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
)

// flight is one pull shared by every caller asking for the same reference
// with the same credentials. It runs detached from any one caller and is
// cancelled only when every caller has gone.
type flight struct {
	done    chan struct{}
	img     Image
	err     error
	cancel  context.CancelFunc
	waiters int
	subs    map[int]func(Progress)
	nextSub int
}

// Pull pulls ref (normalised like Docker: busybox → docker.io/library/busybox:latest)
// and returns the stored image. Concurrent pulls of one reference (with the
// same credentials) do the work once; a caller that gives up does not cancel
// it for the others, and the last one to give up cancels it and returns once
// it is cleaned up. progress, if not nil, is called from the download
// goroutines one call at a time and must return quickly.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth, progress func(Progress)) (Image, error) {
	// "sha256:<hex>" parses as the tag of docker.io/library/sha256; it is
	// an image ID, which no registry serves by that name.
	if _, err := digest.Parse(strings.TrimSpace(ref)); err == nil {
		return Image{}, errdefs.InvalidArgument("pull %q: an image ID cannot be pulled; pull name@digest or name:tag", ref)
	}
	r, err := ParseRef(ref)
	if err != nil {
		return Image{}, err
	}
	creds, err := newCredentials(auth)
	if err != nil {
		return Image{}, err
	}
	// Credentials are part of the key so a caller never rides on a pull
	// that someone else's credentials authorised.
	key := r.String() + "\x00" + creds.key()

	s.fmu.Lock()
	if s.closed {
		s.fmu.Unlock()
		return Image{}, errdefs.FailedPrecondition("pull %s: image service is closed", r)
	}
	f := s.flights[key]
	if f == nil {
		wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel, subs: map[int]func(Progress){}}
		s.flights[key] = f
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			start := time.Now()
			img, err := s.pull(wctx, r, creds, func(p Progress) { s.broadcast(f, p) })
			s.cfg.Observer.PullDone(pullResult(wctx, err), time.Since(start))
			cancel()
			s.fmu.Lock()
			if s.flights[key] == f {
				delete(s.flights, key)
			}
			f.img, f.err = img, err
			s.fmu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	sub := f.nextSub
	f.nextSub++
	if progress != nil {
		f.subs[sub] = progress
	}
	s.fmu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return Image{}, f.err
		}
		return cloneImage(&f.img), nil
	case <-ctx.Done():
		s.fmu.Lock()
		delete(f.subs, sub)
		f.waiters--
		last := f.waiters == 0
		if last {
			f.cancel()
			if s.flights[key] == f {
				delete(s.flights, key)
			}
		}
		s.fmu.Unlock()
		if last {
			// Cleanup is quick once cancelled; waiting for it means a
			// cancelled pull has left nothing behind when Pull returns.
			<-f.done
		}
		return Image{}, fmt.Errorf("pull %s: %w", r, ctx.Err())
	}
}

// pullResult names a pull's outcome for the Observer.
func pullResult(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "success"
	case ctx.Err() != nil:
		return "cancelled"
	}
	return "failure"
}

func (s *Service) broadcast(f *flight, p Progress) {
	s.fmu.Lock()
	subs := make([]func(Progress), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	s.fmu.Unlock()
	for _, fn := range subs {
		fn(p)
	}
}
