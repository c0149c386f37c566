package oci

import (
	"os"
	"time"
)

// capture reads one output stream of an exec into memory up to a limit and
// drops the rest, still reading so the writer never blocks on a full pipe.
type capture struct {
	r, w  *os.File
	limit int
	done  chan struct{}

	buf       []byte
	truncated bool
}

func newCapture(limit int) (*capture, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &capture{r: r, w: w, limit: limit, done: make(chan struct{})}, nil
}

func (c *capture) start() { go c.read() }

func (c *capture) read() {
	defer close(c.done)
	chunk := make([]byte, 64<<10)
	for {
		n, err := c.r.Read(chunk)
		if room := c.limit - len(c.buf); n > 0 {
			if n > room {
				c.truncated = true
				n = max(room, 0)
			}
			c.buf = append(c.buf, chunk[:n]...)
		}
		if err != nil {
			return
		}
	}
}

// finish waits for the writer side to close, or for execDrainTimeout when a
// leftover process keeps it open, and returns what was read.
func (c *capture) finish() ([]byte, bool) {
	_ = c.r.SetReadDeadline(time.Now().Add(execDrainTimeout))
	<-c.done
	return c.buf, c.truncated
}

// close releases both ends; finish must have returned, or start never run.
func (c *capture) close() {
	c.w.Close()
	c.r.Close()
}
