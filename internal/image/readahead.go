package image

import (
	"io"
	"sync"
)

// Read-ahead hands the uncompressed stream from the goroutine that
// downloads, hashes and decompresses it to the one that unpacks it, in
// chunks large enough that the hand-off costs nothing next to the work on
// either side: decompression (user CPU) then overlaps the file creation
// and writes (kernel CPU) instead of taking turns with them on one core.
const (
	readAheadChunk = 256 << 10
	readAheadDepth = 4 // chunks in flight: 1 MiB per layer being unpacked
)

// aheadBufs recycles chunk buffers across layers and pulls.
var aheadBufs = sync.Pool{New: func() any { b := make([]byte, readAheadChunk); return &b }}

type aheadChunk struct {
	buf []byte // a whole chunk buffer, to recycle
	n   int    // bytes of buf that hold data
	err error  // the source's error after these bytes (io.EOF at the end)
}

// aheadReader reads its source in a goroutine of its own, up to
// readAheadDepth chunks ahead of its reader. It is not safe for concurrent
// Reads; Close must be called, and only after Close returns may the caller
// touch the source (or what it reads from) again.
type aheadReader struct {
	full chan aheadChunk
	free chan []byte
	stop chan struct{}
	done sync.WaitGroup
	once sync.Once

	cur aheadChunk
	off int
	err error // sticky: the source's error once all its bytes were read
}

func newAheadReader(src io.Reader) *aheadReader {
	a := &aheadReader{
		full: make(chan aheadChunk, readAheadDepth),
		free: make(chan []byte, readAheadDepth),
		stop: make(chan struct{}),
	}
	for range readAheadDepth {
		b := *aheadBufs.Get().(*[]byte)
		if len(b) != readAheadChunk {
			b = make([]byte, readAheadChunk) // never a short buffer: fill needs room
		}
		a.free <- b
	}
	a.done.Add(1)
	go a.fill(src)
	return a
}

// fill reads src chunk by chunk until it fails or ends, or Close stops it.
func (a *aheadReader) fill(src io.Reader) {
	defer a.done.Done()
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		n, err := readFull(src, buf)
		select {
		case a.full <- aheadChunk{buf: buf, n: n, err: err}:
		case <-a.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// readFull fills buf unless src ends or fails first; unlike io.ReadFull it
// passes the source's own error on unchanged, io.EOF included.
func readFull(src io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := src.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for a.off == a.cur.n {
		if a.err != nil {
			return 0, a.err
		}
		if a.cur.buf != nil {
			a.free <- a.cur.buf // never blocks: there are only readAheadDepth buffers
		}
		a.cur, a.off = <-a.full, 0
		if a.cur.err != nil {
			a.err = a.cur.err
		}
	}
	n := copy(p, a.cur.buf[a.off:a.cur.n])
	a.off += n
	return n, nil
}

// reachedError reports whether the reader has handed out every byte before
// a failure of the source (not its end), so that its next Read fails.
func (a *aheadReader) reachedError() bool {
	return a.err != nil && a.err != io.EOF && a.err != io.ErrClosedPipe && a.off == a.cur.n
}

// Close stops the read-ahead and waits until it no longer reads the source.
// Reads after Close return the source's error if it was reached, else
// io.ErrClosedPipe.
func (a *aheadReader) Close() {
	a.once.Do(func() {
		close(a.stop)
		a.done.Wait()
		// Every buffer is now in free, in full or current: recycle them,
		// each behind a pointer of its own (never one into a, which is
		// cleared below).
		put := func(b []byte) {
			if b != nil {
				aheadBufs.Put(&b)
			}
		}
		put(a.cur.buf)
		for len(a.free) > 0 {
			put(<-a.free)
		}
		for len(a.full) > 0 {
			put((<-a.full).buf)
		}
		a.cur, a.off = aheadChunk{}, 0
		if a.err == nil {
			a.err = io.ErrClosedPipe
		}
	})
}
