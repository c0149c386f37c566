package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cradle-runtime/cradle/internal/config"
)

// An Applier puts one section of a reloaded configuration in force.
// Prepare checks next against what runs and readies the change without
// making it visible; commit makes it visible and cannot fail; abort undoes
// what Prepare readied when another section fails. Prepare may return nil
// funcs. Appliers run in order, all Prepares before any commit, so a
// reload applies whole or not at all.
type Applier struct {
	Section string
	Prepare func(ctx context.Context, cur, next *config.Loaded) (commit, abort func(), err error)
}

// reloader re-reads the configuration files on SIGHUP and applies them.
type reloader struct {
	load     func() (*config.Loaded, error) // the files and flags the daemon started with
	appliers []Applier
	log      *slog.Logger

	mu  sync.Mutex // one reload at a time
	cur atomic.Pointer[config.Loaded]
}

func newReloader(cfg *config.Loaded, load func() (*config.Loaded, error), log *slog.Logger, appliers ...Applier) *reloader {
	r := &reloader{load: load, appliers: appliers, log: log}
	r.cur.Store(cfg)
	return r
}

// current is the configuration in force.
func (r *reloader) current() *config.Loaded { return r.cur.Load() }

// reload applies the files as they are now. A file that does not load or
// validate changes nothing: the error names its file, line, key and
// reason. Keys only a restart can change keep their values and are named
// in a warning. It returns the configuration in force afterwards.
func (r *reloader) reload(ctx context.Context) (*config.Loaded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cur.Load()
	if r.load == nil {
		return cur, fmt.Errorf("no configuration source to reload from")
	}
	next, err := r.load()
	if err != nil {
		r.log.Error("configuration reload failed; the configuration in force is unchanged", "err", err)
		return cur, err
	}
	if keys := config.KeepRestartOnly(&cur.Config, &next.Config); len(keys) > 0 {
		r.log.Warn("configuration keys that only a restart changes keep their old values", "keys", keys)
	}
	changed := config.Diff(cur.Config, next.Config)
	type prepared struct{ commit, abort func() }
	var done []prepared
	for _, a := range r.appliers {
		commit, abort, err := a.Prepare(ctx, cur, next)
		if err != nil {
			for i := len(done) - 1; i >= 0; i-- {
				if done[i].abort != nil {
					done[i].abort()
				}
			}
			err = fmt.Errorf("configuration reload failed in [%s]: %w", a.Section, err)
			r.log.Error("configuration reload failed; the configuration in force is unchanged", "section", a.Section, "err", err)
			return cur, err
		}
		done = append(done, prepared{commit, abort})
	}
	for _, p := range done {
		if p.commit != nil {
			p.commit()
		}
	}
	r.cur.Store(next)
	r.log.Info("configuration reloaded", "changed", changed, "files", next.Files)
	return next, nil
}

// simpleApplier is an Applier whose change cannot fail once next has
// validated: apply runs at commit.
func simpleApplier(section string, apply func(next *config.Loaded)) Applier {
	return Applier{Section: section, Prepare: func(_ context.Context, _, next *config.Loaded) (func(), func(), error) {
		return func() { apply(next) }, nil, nil
	}}
}
