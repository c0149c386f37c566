package image

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/iotest"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	return b
}

// The reader yields exactly the source's bytes, whatever the sizes of the
// reads on either side, and then the source's EOF.
func TestAheadReaderPassesBytesThrough(t *testing.T) {
	for _, size := range []int{0, 1, readAheadChunk - 1, readAheadChunk, readAheadChunk + 1, 5*readAheadChunk + 123} {
		want := randomBytes(size)
		for name, src := range map[string]io.Reader{
			"whole":    bytes.NewReader(want),
			"one byte": iotest.OneByteReader(bytes.NewReader(want)),
			"half":     iotest.HalfReader(bytes.NewReader(want)),
		} {
			a := newAheadReader(src)
			got, err := io.ReadAll(iotest.HalfReader(a))
			a.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("size %d, %s source: read %d bytes (equal %v), %v", size, name, len(got), bytes.Equal(got, want), err)
			}
			// The end stays the end, and is no error.
			if n, err := a.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Errorf("read after EOF = %d, %v", n, err)
			}
			if a.reachedError() {
				t.Error("reachedError at the end of the source")
			}
		}
	}
}

// A failing source's bytes come first, then its own error, unchanged (not
// io.ErrUnexpectedEOF), and again on every later read.
func TestAheadReaderReportsSourceErrorAfterItsBytes(t *testing.T) {
	boom := errors.New("connection reset")
	data := randomBytes(readAheadChunk + 100)
	a := newAheadReader(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)))
	defer a.Close()
	head := make([]byte, readAheadChunk+50)
	if _, err := io.ReadFull(a, head); err != nil {
		t.Fatal(err)
	}
	if a.reachedError() {
		t.Error("reachedError with 50 bytes still to read")
	}
	rest, err := io.ReadAll(a)
	got := append(head, rest...)
	if !a.reachedError() {
		t.Error("no reachedError after the source's error was read")
	}
	if !errors.Is(err, boom) || !bytes.Equal(got, data) {
		t.Fatalf("read %d of %d bytes, err %v; want all, then %v", len(got), len(data), err, boom)
	}
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, boom) {
		t.Errorf("second read error %v, want %v", err, boom)
	}
}

// countingReader is an endless source that counts its reads.
type countingReader struct{ reads atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return len(p), nil
}

// The read-ahead is bounded, and once Close returns the source is no longer
// read: the caller may then use it (drain it, close it) alone.
func TestAheadReaderCloseStopsReading(t *testing.T) {
	src := &countingReader{}
	a := newAheadReader(src)
	if _, err := io.ReadFull(a, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	after := src.reads.Load()
	// One chunk read for the consumer plus at most readAheadDepth ahead;
	// the source fills a chunk with a single read.
	if after > readAheadDepth+1 {
		t.Errorf("source read %d times for 10 bytes; read-ahead is bounded by %d chunks", after, readAheadDepth)
	}
	a.Close() // twice is fine
	if n, err := a.Read(make([]byte, 10)); n != 0 || err != io.ErrClosedPipe {
		t.Errorf("read after Close = %d, %v; want io.ErrClosedPipe", n, err)
	}
	if got := src.reads.Load(); got != after {
		t.Errorf("source read %d more times after Close", got-after)
	}
}

// blockedReader blocks its first read until release is closed.
type blockedReader struct {
	entered, release chan struct{}
}

func (b *blockedReader) Read(p []byte) (int, error) {
	close(b.entered)
	<-b.release
	return 0, io.EOF
}

// Close waits for a read in progress (a download waiting on the network):
// until it returns, the source is not the caller's to touch.
func TestAheadReaderCloseWaitsForReadInProgress(t *testing.T) {
	src := &blockedReader{entered: make(chan struct{}), release: make(chan struct{})}
	a := newAheadReader(src)
	<-src.entered
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while the source was still being read")
	default:
	}
	close(src.release)
	<-closed
}

// Readers closed early or late hand their buffers back whole, and the next
// readers (buffers from the pool) read their sources correctly.
func TestAheadReaderReusesBuffers(t *testing.T) {
	data := randomBytes(3*readAheadChunk + 7)
	for i := range 6 {
		a := newAheadReader(bytes.NewReader(data))
		if i%2 == 0 {
			// Closed mid-stream, with chunks current, queued and free.
			if _, err := io.ReadFull(a, make([]byte, readAheadChunk/2)); err != nil {
				t.Fatal(err)
			}
			a.Close()
			continue
		}
		got, err := io.ReadAll(a)
		a.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("reader %d: read %d of %d bytes (equal %v), %v", i, len(got), len(data), bytes.Equal(got, data), err)
		}
	}
	for range readAheadDepth * 3 {
		if b := *aheadBufs.Get().(*[]byte); len(b) != readAheadChunk {
			t.Fatalf("pooled buffer of %d bytes, want %d", len(b), readAheadChunk)
		}
	}
}
