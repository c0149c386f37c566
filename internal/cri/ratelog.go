package cri

import (
	"sync"
	"time"
)

// A failing client retries: kubelet repeats a failed call every second or
// so, and a broken one in a loop as fast as it can. The log keeps the first
// of each distinct failure at once and, if it recurred within the window,
// one more line at the window's end saying how often.
const (
	logWindow = time.Minute
	// logKeys bounds the failures tracked. When all are in use, a new
	// failure is tracked under its fallback key (method and code alone),
	// so a flood of distinct messages, each naming its own ID, is still
	// limited: those keys are few.
	logKeys = 1024
)

// rateLog writes each key's first line at once and folds its repeats
// within the window into one summary line.
type rateLog struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[string]*logEntry
}

type logEntry struct {
	repeats int
}

func newRateLog(window time.Duration, max int) *rateLog {
	return &rateLog{window: window, max: max, seen: map[string]*logEntry{}}
}

// log calls write(0) now if key (or, with the table full, fallback) has
// no line in the current window; otherwise it counts a repeat. When the
// window ends, write(n) is called with the n repeats, if there were any.
func (r *rateLog) log(key, fallback string, write func(repeats int)) {
	r.mu.Lock()
	if _, ok := r.seen[key]; !ok && len(r.seen) >= r.max {
		key = fallback
	}
	if e, ok := r.seen[key]; ok {
		e.repeats++
		r.mu.Unlock()
		return
	}
	e := &logEntry{}
	r.seen[key] = e
	r.mu.Unlock()
	write(0)
	time.AfterFunc(r.window, func() {
		r.mu.Lock()
		delete(r.seen, key)
		n := e.repeats
		r.mu.Unlock()
		if n > 0 {
			write(n)
		}
	})
}
