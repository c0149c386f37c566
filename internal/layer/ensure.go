package layer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// FillFunc unpacks a layer into dir (an empty directory) and returns what it
// learned about it: at least DiffID and Size.
type FillFunc func(ctx context.Context, dir string) (Info, error)

// fillCall is one unpack of a chain ID and the callers waiting for it.
type fillCall struct {
	done    chan struct{} // closed, under Store.mu, once info/err are final
	info    Info
	err     error
	waiters int // callers still waiting; each is owed a reference
	cancel  context.CancelFunc
	// abandoned is set when the last waiter left and the fill was
	// cancelled; it must not commit, and newcomers wait for it to end.
	abandoned bool
}

// Ensure returns the layer chainID (whose parent layer is parent), unpacking it
// with fill when it is absent, and takes one reference on it that the caller
// must Release. Concurrent calls for one chain ID run fill once; if fill fails
// nothing is left on disk and every waiter gets the error.
//
// The fill runs detached from any single caller: a caller whose ctx ends
// stops waiting and gets ctx.Err(), while the fill goes on for the others.
// Only when every waiter has gone is the fill's own context cancelled and its
// work discarded. A caller whose ctx ends just as the fill commits may still
// get the layer (and a reference) rather than the context error.
//
// The Info returned by fill must carry a DiffID that yields chainID on top
// of parent (ErrDataLoss otherwise); Ensure sets ChainID and Parent.
func (s *Store) Ensure(ctx context.Context, chainID, parent digest.Digest, fill FillFunc) (Info, error) {
	if err := validChainID(chainID); err != nil {
		return Info{}, err
	}
	if parent != "" {
		if err := validChainID(parent); err != nil {
			return Info{}, fmt.Errorf("parent: %w", err)
		}
	}
	if fill == nil {
		return Info{}, errdefs.InvalidArgument("ensure layer %s: no fill function", chainID)
	}
	for {
		s.mu.Lock()
		if l, ok := s.layers[chainID]; ok {
			l.refs++
			info := l.info
			s.mu.Unlock()
			return info, nil
		}
		c := s.fills[chainID]
		if c != nil && c.abandoned {
			s.mu.Unlock()
			// Let the cancelled fill clean up before starting anew, so
			// two fills of one chain ID never race to commit.
			select {
			case <-c.done:
				continue
			case <-ctx.Done():
				return Info{}, ctx.Err()
			}
		}
		if c == nil {
			c = s.startFill(ctx, chainID, parent, fill)
		}
		c.waiters++
		s.mu.Unlock()
		return s.wait(ctx, c)
	}
}

func (s *Store) wait(ctx context.Context, c *fillCall) (Info, error) {
	select {
	case <-c.done:
		return c.info, c.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-c.done:
		// It finished while we were leaving and counted our reference.
		return c.info, c.err
	default:
	}
	c.waiters--
	if c.waiters == 0 {
		c.abandoned = true
		c.cancel()
	}
	return Info{}, ctx.Err()
}

// startFill registers and starts a fill; s.mu is held. The fill keeps the
// values of the first caller's ctx but not its cancellation.
func (s *Store) startFill(ctx context.Context, chainID, parent digest.Digest, fill FillFunc) *fillCall {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &fillCall{done: make(chan struct{}), cancel: cancel}
	s.fills[chainID] = c
	go s.runFill(fctx, c, chainID, parent, fill)
	return c
}

func (s *Store) runFill(ctx context.Context, c *fillCall, chainID, parent digest.Digest, fill FillFunc) {
	defer c.cancel()
	info, err := s.fill(ctx, c, chainID, parent, fill)

	var doomed string
	s.mu.Lock()
	delete(s.fills, chainID)
	if err == nil {
		if c.waiters > 0 {
			s.layers[chainID] = &layerRef{info: info, refs: c.waiters}
			s.gen++
		} else {
			// Everyone left between the commit and now.
			err = context.Canceled
			var derr error
			if doomed, derr = s.detach(chainID.Encoded()); derr != nil {
				// Still in place: keep it as an unreferenced layer.
				s.layers[chainID] = &layerRef{info: info}
			}
			s.gen++
		}
	}
	c.info, c.err = info, err
	if err != nil {
		c.info = Info{}
	}
	close(c.done)
	s.mu.Unlock()
	if doomed != "" {
		os.RemoveAll(doomed)
	}
}

// fill unpacks into tmp/<random>/diff and commits the result by renaming
// tmp/<random> to the chain ID. On error nothing is left behind.
func (s *Store) fill(ctx context.Context, c *fillCall, chainID, parent digest.Digest, fill FillFunc) (_ Info, err error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, tmpDirName), "fill-")
	if err != nil {
		return Info{}, fmt.Errorf("unpack layer %s: %w", chainID, err)
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	diff := filepath.Join(tmp, diffName)
	if err := os.Mkdir(diff, 0o755); err != nil {
		return Info{}, fmt.Errorf("unpack layer %s: %w", chainID, err)
	}
	info, err := fill(ctx, diff)
	if err == nil {
		err = ctx.Err() // a fill that ignored cancellation
	}
	if err != nil {
		return Info{}, fmt.Errorf("unpack layer %s: %w", chainID, err)
	}
	if err := checkFilled(info, chainID, parent); err != nil {
		return Info{}, err
	}
	info.ChainID, info.Parent = chainID, parent

	b, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, infoName), b, 0o600); err != nil {
		return Info{}, fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	root, err := os.Open(s.dir)
	if err != nil {
		return Info{}, fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	defer root.Close()
	// One syncfs makes every unpacked file and the record durable before the
	// rename can be: cheaper than an fsync per file, and a crash can then
	// only lose the whole layer, never part of its content.
	if err := unix.Syncfs(int(root.Fd())); err != nil {
		return Info{}, fmt.Errorf("commit layer %s: syncfs: %w", chainID, err)
	}

	final := filepath.Join(s.dir, chainID.Encoded())
	s.mu.Lock()
	if c.abandoned {
		s.mu.Unlock()
		return Info{}, fmt.Errorf("unpack layer %s: %w", chainID, context.Canceled)
	}
	err = os.Rename(tmp, final)
	s.mu.Unlock()
	if err != nil {
		return Info{}, fmt.Errorf("commit layer %s: %w", chainID, err)
	}
	committed = true
	if err := root.Sync(); err != nil {
		// The rename may not survive a crash, yet callers would record that
		// they hold the layer: take it back and report the failure.
		s.mu.Lock()
		doomed, derr := s.detach(chainID.Encoded())
		s.mu.Unlock()
		if derr == nil {
			os.RemoveAll(doomed)
		}
		return Info{}, fmt.Errorf("commit layer %s: sync %s: %w", chainID, s.dir, err)
	}
	return info, nil
}

// checkFilled rejects a fill result that does not describe chainID.
func checkFilled(info Info, chainID, parent digest.Digest) error {
	if err := info.DiffID.Validate(); err != nil {
		return errdefs.New(errdefs.ErrInvalidArgument, "unpack layer %s: fill returned diff ID %q: %w", chainID, info.DiffID, err)
	}
	if info.Size < 0 {
		return errdefs.InvalidArgument("unpack layer %s: fill returned size %d", chainID, info.Size)
	}
	if got := ChainID(parent, info.DiffID); got != chainID {
		return errdefs.New(errdefs.ErrDataLoss,
			"unpack layer %s: content has diff ID %s, which on parent %q gives chain ID %s", chainID, info.DiffID, parent, got)
	}
	return nil
}
