package cli

import (
	"io"
	"sync"
	"sync/atomic"
)

// detachKeys end a terminal session without ending the remote process:
// Ctrl-P Ctrl-Q, crictl's and docker's default.
var detachKeys = []byte{0x10, 0x11}

// detachReader passes stdin through, watching for the detach keys. Keys
// that start the sequence are held back until the next byte shows whether
// the sequence follows; on the whole sequence it calls detach and hands out
// nothing more, so the remote side never reads the keys nor an end of input.
type detachReader struct {
	r      io.Reader
	keys   []byte
	detach func()

	matched  int    // leading keys held back; only Read touches it
	pending  []byte // bytes to hand out before reading again
	done     atomic.Bool
	closed   chan struct{}
	closeOne sync.Once
}

func newDetachReader(r io.Reader, keys []byte, detach func()) *detachReader {
	return &detachReader{r: r, keys: keys, detach: detach, closed: make(chan struct{})}
}

func (d *detachReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		if d.done.Load() {
			// Block rather than report the end of input; close
			// releases the copier once the session is over.
			<-d.closed
			return 0, io.EOF
		}
		buf := make([]byte, len(p))
		n, err := d.r.Read(buf)
		d.pending = d.scan(buf[:n])
		if err != nil && !d.done.Load() {
			// The input ended in the middle of the sequence: it was input.
			d.pending = append(d.pending, d.keys[:d.matched]...)
			d.matched = 0
			if len(d.pending) == 0 {
				return 0, err
			}
		}
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// scan returns what of in goes to the remote side, updating the match.
func (d *detachReader) scan(in []byte) []byte {
	out := make([]byte, 0, len(in)+len(d.keys))
	for _, b := range in {
		if b == d.keys[d.matched] {
			d.matched++
			if d.matched == len(d.keys) {
				d.done.Store(true)
				d.detach()
				return out
			}
			continue
		}
		// A false start: the held keys were input after all.
		out = append(out, d.keys[:d.matched]...)
		d.matched = 0
		if b == d.keys[0] {
			d.matched = 1
			continue
		}
		out = append(out, b)
	}
	return out
}

func (d *detachReader) detached() bool { return d.done.Load() }

func (d *detachReader) close() { d.closeOne.Do(func() { close(d.closed) }) }
