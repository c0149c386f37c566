package events

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Defaults of Config.
const (
	// DefaultBuffer events may wait for one subscriber. kubelet reads its
	// stream into a channel of its own at once, so only a stuck or dead
	// reader fills this; gRPC's own flow-control window buffers more.
	DefaultBuffer = 256
	// DefaultBacklogAge bounds how old a kept event may be when a
	// subscriber arrives: kubelet reconnects within seconds, and an older
	// event would only replay history its relist has already seen.
	DefaultBacklogAge = time.Minute
)

var (
	// ErrSlow ends a subscription whose buffer overflowed. It is
	// ResourceExhausted: the subscriber's buffer is what ran out. The
	// subscriber has missed events and must relist before it subscribes
	// again, which is what kubelet does after any stream error.
	ErrSlow = errdefs.New(errdefs.ErrResourceExhausted,
		"event subscriber fell too far behind and was dropped; relist and subscribe again")
	// ErrClosed ends subscriptions when the daemon shuts down.
	ErrClosed = errdefs.Unavailable("event stream closed: the daemon is shutting down")
	// ErrUnsubscribed is the end of a subscription its owner closed.
	ErrUnsubscribed = errors.New("subscription closed")
)

// Config sizes a Broadcaster; zero values take the defaults.
type Config struct {
	// Buffer is the number of events that may wait for one subscriber.
	Buffer int
	// Backlog is the number of events kept while nobody subscribes, for
	// the next subscriber; the oldest go first. It is at most Buffer, so
	// a replay always fits. Negative keeps none.
	Backlog int
	// BacklogAge drops kept events older than this.
	BacklogAge time.Duration
	// Now is the clock; tests set it.
	Now func() time.Time
	// OnDrop, if set, counts events lost: one for each subscriber dropped
	// for falling behind (the event it could not take), and each kept
	// event that fell off the backlog or aged out of it. It is called
	// with the Broadcaster's lock held and must return at once.
	OnDrop func(n int)
}

// Broadcaster delivers every published value to every subscriber in
// publication order. It is safe for concurrent use.
type Broadcaster[T any] struct {
	cfg Config

	mu      sync.Mutex
	subs    map[*Subscription[T]]struct{}
	backlog []kept[T] // only while subs is empty
	closed  bool
}

type kept[T any] struct {
	at time.Time
	v  T
}

// New returns a Broadcaster.
func New[T any](cfg Config) *Broadcaster[T] {
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultBuffer
	}
	if cfg.Backlog == 0 || cfg.Backlog > cfg.Buffer {
		cfg.Backlog = cfg.Buffer
	}
	if cfg.BacklogAge <= 0 {
		cfg.BacklogAge = DefaultBacklogAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnDrop == nil {
		cfg.OnDrop = func(int) {}
	}
	return &Broadcaster[T]{cfg: cfg, subs: map[*Subscription[T]]struct{}{}}
}

// Subscription is one subscriber's view of the events.
type Subscription[T any] struct {
	b    *Broadcaster[T]
	ch   chan T
	err  error // why it ended; guarded by b.mu
	stop func() bool
}

// Events delivers the events in order. It is closed when the
// subscription ends; Err then says why. Events buffered before the end
// are still delivered, so check Err before acting on one if a dropped
// subscriber must stop at once.
func (s *Subscription[T]) Events() <-chan T { return s.ch }

// Err is nil while the subscription is active, else why it ended: the
// subscriber's context error, ErrSlow, ErrClosed or ErrUnsubscribed.
func (s *Subscription[T]) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close ends the subscription. It is idempotent.
func (s *Subscription[T]) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.b.drop(s, ErrUnsubscribed)
}

// Subscribe registers a subscriber until ctx ends or Close. The first
// subscriber after a quiet spell gets the kept backlog first.
func (b *Broadcaster[T]) Subscribe(ctx context.Context) *Subscription[T] {
	s := &Subscription[T]{b: b, ch: make(chan T, b.cfg.Buffer)}
	b.mu.Lock()
	if b.closed {
		s.err = ErrClosed
		close(s.ch)
		b.mu.Unlock()
		return s
	}
	if len(b.subs) == 0 {
		b.expire()
		for _, k := range b.backlog {
			s.ch <- k.v // Backlog <= Buffer: never blocks
		}
		b.backlog = nil
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	// A gone subscriber is unregistered at once, not at the next publish.
	s.stop = context.AfterFunc(ctx, func() { b.drop(s, context.Cause(ctx)) })
	return s
}

// Publish delivers v to every subscriber without ever waiting: a
// subscriber whose buffer is full is dropped with ErrSlow. With no
// subscriber, v is kept for the next one.
func (b *Broadcaster[T]) Publish(v T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if len(b.subs) == 0 {
		b.keep(v)
		return
	}
	for s := range b.subs {
		select {
		case s.ch <- v:
		default:
			b.dropLocked(s, ErrSlow)
			b.cfg.OnDrop(1)
		}
	}
}

// Subscribers is the number of active subscriptions.
func (b *Broadcaster[T]) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close ends every subscription with ErrClosed and refuses new ones, so
// a graceful gRPC stop need not wait for streams that never end.
func (b *Broadcaster[T]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.backlog = nil
	for s := range b.subs {
		b.dropLocked(s, ErrClosed)
	}
}

func (b *Broadcaster[T]) drop(s *Subscription[T], why error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropLocked(s, why)
}

func (b *Broadcaster[T]) dropLocked(s *Subscription[T], why error) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	s.err = why
	// Sends happen only under b.mu, so closing here cannot race one.
	close(s.ch)
}

func (b *Broadcaster[T]) keep(v T) {
	if b.cfg.Backlog < 0 {
		return
	}
	b.expire()
	if len(b.backlog) == b.cfg.Backlog {
		// The next subscriber relists first (kubelet does after any
		// stream error), which covers what falls off here.
		b.backlog = append(b.backlog[:0], b.backlog[1:]...)
		b.cfg.OnDrop(1)
	}
	b.backlog = append(b.backlog, kept[T]{at: b.cfg.Now(), v: v})
}

// expire drops kept events older than BacklogAge.
func (b *Broadcaster[T]) expire() {
	cutoff := b.cfg.Now().Add(-b.cfg.BacklogAge)
	i := 0
	for i < len(b.backlog) && b.backlog[i].at.Before(cutoff) {
		i++
	}
	if i > 0 {
		b.backlog = append(b.backlog[:0], b.backlog[i:]...)
		b.cfg.OnDrop(i)
	}
}
