package events

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// drain reads sub until its channel closes or want values arrived.
func drain(t *testing.T, sub *Subscription[int], want int) []int {
	t.Helper()
	var got []int
	timeout := time.After(10 * time.Second)
	for len(got) < want {
		select {
		case v, ok := <-sub.Events():
			if !ok {
				return got
			}
			got = append(got, v)
		case <-timeout:
			t.Fatalf("got %d of %d events within 10s", len(got), want)
		}
	}
	return got
}

// closed waits for sub's channel to close, discarding buffered events.
func closed(t *testing.T, sub *Subscription[int]) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-sub.Events():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("subscription still open after 10s")
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestEverySubscriberGetsEveryEventInOrder(t *testing.T) {
	const n = 2000
	b := New[int](Config{Buffer: n})
	ctx := context.Background()
	subs := []*Subscription[int]{b.Subscribe(ctx), b.Subscribe(ctx), b.Subscribe(ctx)}
	got := make([][]int, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { got[i] = drain(t, s, n) })
	}
	for i := range n {
		b.Publish(i)
	}
	wg.Wait()
	for i, s := range subs {
		if err := s.Err(); err != nil {
			t.Errorf("subscriber %d ended: %v", i, err)
		}
		if !slices.Equal(got[i], seq(n)) {
			t.Errorf("subscriber %d got %d events out of order or incomplete", i, len(got[i]))
		}
	}
}

func TestConcurrentPublishersYieldOneOrderForAll(t *testing.T) {
	b := New[int](Config{Buffer: 4096})
	a, c := b.Subscribe(context.Background()), b.Subscribe(context.Background())
	const per, publishers = 500, 4
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range per {
				b.Publish(p*per + i)
			}
		})
	}
	wg.Wait()
	ga, gc := drain(t, a, per*publishers), drain(t, c, per*publishers)
	if !slices.Equal(ga, gc) {
		t.Fatal("two subscribers saw different orders")
	}
	// Each publisher's own events keep their order.
	last := map[int]int{}
	for _, v := range ga {
		p := v / per
		if prev, ok := last[p]; ok && v < prev {
			t.Fatalf("publisher %d: %d after %d", p, v, prev)
		}
		last[p] = v
	}
}

func TestSlowSubscriberIsDroppedWithoutBlockingThePublisher(t *testing.T) {
	var dropped atomic.Int64
	b := New[int](Config{Buffer: 4, OnDrop: func(n int) { dropped.Add(int64(n)) }})
	slow := b.Subscribe(context.Background()) // never reads while publishing
	fast := b.Subscribe(context.Background())
	const n = 1000
	// The reader acknowledges each event, and the publisher waits for
	// that, so the reading subscriber never lags: only the slow one can.
	var fastGot []int
	ack := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for v := range fast.Events() {
			fastGot = append(fastGot, v)
			ack <- struct{}{}
			if len(fastGot) == n {
				return
			}
		}
	}()

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			b.Publish(i)
			select {
			case <-ack:
			case <-readDone:
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	<-readDone

	if !slices.Equal(fastGot, seq(n)) {
		t.Errorf("the reading subscriber got %d events, want all %d in order", len(fastGot), n)
	}
	if got := drain(t, slow, n); !slices.Equal(got, seq(4)) {
		t.Errorf("the slow subscriber got %v, want its buffer's worth [0 1 2 3] and then the end", got)
	}
	err := slow.Err()
	if !errors.Is(err, ErrSlow) || errdefs.Code(err) != codes.ResourceExhausted {
		t.Errorf("slow subscriber ended with %v (code %v), want ErrSlow / ResourceExhausted", err, errdefs.Code(err))
	}
	if fast.Err() != nil || b.Subscribers() != 1 {
		t.Errorf("fast: %v, subscribers %d; want the fast one alone, still active", fast.Err(), b.Subscribers())
	}
	// The event the slow one could not take; later ones were never its.
	if n := dropped.Load(); n != 1 {
		t.Errorf("dropped = %d, want 1", n)
	}
}

func TestCancelledSubscriberIsUnregisteredAtOnce(t *testing.T) {
	b := New[int](Config{Buffer: 16})
	ctx, cancel := context.WithCancel(context.Background())
	sub := b.Subscribe(ctx)
	other := b.Subscribe(context.Background())
	b.Publish(1)
	cancel()
	// No publish in between: the cancellation alone ends it.
	closed(t, sub)
	if !errors.Is(sub.Err(), context.Canceled) {
		t.Errorf("Err = %v, want context.Canceled", sub.Err())
	}
	if n := b.Subscribers(); n != 1 {
		t.Errorf("subscribers = %d after cancel, want 1", n)
	}
	for i := range 10 {
		b.Publish(i)
	}
	if other.Err() != nil {
		t.Errorf("the other subscriber ended: %v", other.Err())
	}
}

func TestAlreadyCancelledContextEndsTheSubscription(t *testing.T) {
	b := New[int](Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sub := b.Subscribe(ctx)
	closed(t, sub)
	if b.Subscribers() != 0 || !errors.Is(sub.Err(), context.Canceled) {
		t.Errorf("subscribers %d, err %v", b.Subscribers(), sub.Err())
	}
}

func TestCloseIsIdempotentAndUnregisters(t *testing.T) {
	b := New[int](Config{})
	sub := b.Subscribe(context.Background())
	sub.Close()
	sub.Close()
	closed(t, sub)
	if b.Subscribers() != 0 || !errors.Is(sub.Err(), ErrUnsubscribed) {
		t.Errorf("subscribers %d, err %v", b.Subscribers(), sub.Err())
	}
}

func TestBacklogReplaysEventsPublishedWhileNobodyListened(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var dropped atomic.Int64
	b := New[int](Config{Buffer: 8, Backlog: 3, BacklogAge: time.Minute, Now: clock,
		OnDrop: func(n int) { dropped.Add(int64(n)) }})

	b.Publish(0) // expires
	advance(2 * time.Minute)
	for i := 1; i <= 4; i++ { // 1 falls off: the backlog holds 3
		b.Publish(i)
	}
	if n := dropped.Load(); n != 2 {
		t.Errorf("dropped = %d, want 2 (0 aged out, 1 fell off)", n)
	}
	sub := b.Subscribe(context.Background())
	b.Publish(5)
	if got := drain(t, sub, 4); !slices.Equal(got, []int{2, 3, 4, 5}) {
		t.Errorf("first subscriber got %v, want the kept [2 3 4] then the live 5", got)
	}
	// The backlog went to the first subscriber only.
	late := b.Subscribe(context.Background())
	b.Publish(6)
	if got := drain(t, late, 1); !slices.Equal(got, []int{6}) {
		t.Errorf("second subscriber got %v, want only [6]", got)
	}

	// No backlog when disabled.
	none := New[int](Config{Backlog: -1})
	none.Publish(1)
	s := none.Subscribe(context.Background())
	none.Publish(2)
	if got := drain(t, s, 1); !slices.Equal(got, []int{2}) {
		t.Errorf("with Backlog -1 got %v, want [2]", got)
	}
}

func TestBroadcasterCloseEndsEverySubscription(t *testing.T) {
	b := New[int](Config{})
	subs := []*Subscription[int]{b.Subscribe(context.Background()), b.Subscribe(context.Background())}
	b.Close()
	b.Publish(1) // no panic, nobody gets it
	for _, s := range subs {
		closed(t, s)
		if !errors.Is(s.Err(), ErrClosed) || errdefs.Code(s.Err()) != codes.Unavailable {
			t.Errorf("Err = %v, want ErrClosed (Unavailable)", s.Err())
		}
	}
	after := b.Subscribe(context.Background())
	closed(t, after)
	if !errors.Is(after.Err(), ErrClosed) || b.Subscribers() != 0 {
		t.Errorf("subscribe after Close: %v, %d subscribers", after.Err(), b.Subscribers())
	}
	b.Close()
}

func TestKindNames(t *testing.T) {
	for k, want := range map[Kind]string{Created: "created", Started: "started", Stopped: "stopped", Deleted: "deleted", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("%d.String() = %q", int(k), k.String())
		}
	}
}
