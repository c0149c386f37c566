package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// spinnerInterval is how often the pull display is redrawn.
const spinnerInterval = 100 * time.Millisecond

var spinnerFrames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// spinner shows on a terminal that a call is still running: a spinner, what
// is being done and the time spent. The CRI reports nothing about a pull
// until it ends, so it claims no bytes or layers it cannot know.
type spinner struct {
	w     io.Writer
	label string
	start time.Time

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// startSpinner draws the first frame at once and redraws until Stop.
func startSpinner(w io.Writer, label string, interval time.Duration) *spinner {
	s := &spinner{w: w, label: label, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(interval)
	return s
}

func (s *spinner) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		io.WriteString(s.w, spinnerFrame(i, s.label, time.Since(s.start)))
		select {
		case <-s.stop:
			io.WriteString(s.w, "\r\033[K") // leave a clean line for the result
			return
		case <-t.C:
		}
	}
}

// Stop erases the display and returns once it no longer writes.
func (s *spinner) Stop() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// spinnerFrame is one redraw: back to the line start, clear it, draw.
func spinnerFrame(i int, label string, elapsed time.Duration) string {
	return fmt.Sprintf("\r\033[K%s %s (%s)", spinnerFrames[i%len(spinnerFrames)], label, formatElapsed(elapsed))
}

// formatElapsed gives tenths of seconds for the first minute, then minutes
// and seconds ("4.2s", "1m05s").
func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Truncate(100*time.Millisecond).Seconds())
	}
	d = d.Truncate(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
