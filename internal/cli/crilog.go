package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// The CRI log format, written by conmon and every CRI runtime, is one
// record per line:
//
//	2016-10-06T00:17:09.669794202Z stdout P first part of a long line
//	2016-10-06T00:17:09.669794203Z stdout F and its end
//
// The tag is P for a fragment of a line the runtime split (too long, or
// not yet ended) and F for the last or only fragment; more tags may follow
// after a colon ("F:x"). Fragments of one stream are joined here into the
// line the program wrote, so --tail counts and --since filters whole lines.

// logLine is one line as the container wrote it.
type logLine struct {
	time    time.Time // of its first fragment
	stderr  bool
	content []byte // without the newline
	// partial marks a line whose end was never logged: the container is
	// still writing it, or stopped in the middle.
	partial bool
}

var errNotCRILog = errors.New("not a CRI log line")

// parseCRILogRecord splits one record (without its newline).
func parseCRILogRecord(rec []byte) (ts time.Time, stderr, partial bool, content []byte, err error) {
	field := func() []byte {
		i := bytes.IndexByte(rec, ' ')
		if i < 0 {
			f := rec
			rec = nil
			return f
		}
		f := rec[:i]
		rec = rec[i+1:]
		return f
	}
	rawTS, stream := field(), field()
	if rec == nil {
		return ts, false, false, nil, errNotCRILog
	}
	tag := field()
	if ts, err = time.Parse(time.RFC3339Nano, string(rawTS)); err != nil {
		return ts, false, false, nil, errNotCRILog
	}
	switch string(stream) {
	case "stdout":
	case "stderr":
		stderr = true
	default:
		return ts, false, false, nil, errNotCRILog
	}
	switch first, _, _ := bytes.Cut(tag, []byte(":")); string(first) {
	case "F":
	case "P":
		partial = true
	default:
		return ts, false, false, nil, errNotCRILog
	}
	return ts, stderr, partial, rec, nil
}

// logOptions select and format what logs prints.
type logOptions struct {
	tail       int // lines from the end; negative: all
	since      time.Time
	timestamps bool
	follow     bool
	// pollInterval is how often a followed log is checked for growth.
	pollInterval time.Duration
	// running reports whether the container may still write; following
	// stops once it does not and the file is read to its end.
	running func(context.Context) (bool, error)
}

// logReader turns a CRI log file into lines.
type logReader struct {
	r       *bufio.Reader
	carry   []byte      // an unfinished record at the end of the file
	pending [2]*logLine // unjoined fragments, per stream
	skipped int         // records that are not in the CRI format
}

// next returns the next whole line, or nil at the end of what is written.
func (lr *logReader) next() (*logLine, error) {
	for {
		rec, err := lr.r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(lr.carry) > 0 {
			rec = append(lr.carry, rec...)
			lr.carry = nil
		}
		if errors.Is(err, io.EOF) {
			// A record without its newline is still being written.
			lr.carry = rec
			return nil, nil
		}
		if l := lr.add(rec[:len(rec)-1]); l != nil {
			return l, nil
		}
	}
}

// add feeds one record and returns the line it completes, if any.
func (lr *logReader) add(rec []byte) *logLine {
	ts, stderr, partial, content, err := parseCRILogRecord(rec)
	if err != nil {
		lr.skipped++
		return nil
	}
	s := 0
	if stderr {
		s = 1
	}
	l := lr.pending[s]
	if l == nil {
		l = &logLine{time: ts, stderr: stderr}
	}
	l.content = append(l.content, content...)
	if partial {
		lr.pending[s] = l
		return nil
	}
	lr.pending[s] = nil
	return l
}

// flush returns what is left at the true end of a log: an unended record
// and unjoined fragments, as partial lines.
func (lr *logReader) flush() []*logLine {
	var out []*logLine
	if len(lr.carry) > 0 {
		rec := lr.carry
		lr.carry = nil
		if l := lr.add(rec); l != nil {
			out = append(out, l)
		}
	}
	for i, l := range lr.pending {
		if l != nil {
			l.partial = true
			out = append(out, l)
			lr.pending[i] = nil
		}
	}
	return out
}

// copyLogs writes a CRI log file's lines to stdout and stderr, the streams
// they were logged on.
func copyLogs(ctx context.Context, f io.Reader, opts logOptions, stdout, stderr io.Writer) (skipped int, err error) {
	lr := &logReader{r: bufio.NewReader(f)}
	write := func(l *logLine) error {
		if !opts.since.IsZero() && l.time.Before(opts.since) {
			return nil
		}
		w := stdout
		if l.stderr {
			w = stderr
		}
		var buf bytes.Buffer
		if opts.timestamps {
			buf.WriteString(l.time.Format(time.RFC3339Nano))
			buf.WriteByte(' ')
		}
		buf.Write(l.content)
		if !l.partial {
			buf.WriteByte('\n')
		}
		_, err := w.Write(buf.Bytes())
		return err
	}

	// What is written so far: --tail keeps the last lines in a ring.
	var ring []*logLine
	keep := func(l *logLine) error {
		if opts.tail < 0 {
			return write(l)
		}
		if opts.tail == 0 || (!opts.since.IsZero() && l.time.Before(opts.since)) {
			return nil
		}
		if len(ring) == opts.tail {
			ring = ring[1:]
		}
		ring = append(ring, l)
		return nil
	}
	for {
		l, err := lr.next()
		if err != nil {
			return lr.skipped, err
		}
		if l == nil {
			break
		}
		if err := keep(l); err != nil {
			return lr.skipped, err
		}
	}
	if !opts.follow {
		for _, l := range lr.flush() {
			if err := keep(l); err != nil {
				return lr.skipped, err
			}
		}
	}
	for _, l := range ring {
		if err := write(l); err != nil {
			return lr.skipped, err
		}
	}
	if !opts.follow {
		return lr.skipped, nil
	}

	// Following: poll for growth until the container stops, then read what
	// it wrote last. The runtime may close the file after the state change,
	// so the final read comes after the check.
	tick := time.NewTicker(opts.pollInterval)
	defer tick.Stop()
	for {
		running, err := opts.running(ctx)
		if err != nil {
			return lr.skipped, err
		}
		for {
			l, err := lr.next()
			if err != nil {
				return lr.skipped, err
			}
			if l == nil {
				break
			}
			if err := write(l); err != nil {
				return lr.skipped, err
			}
		}
		if !running {
			for _, l := range lr.flush() {
				if err := write(l); err != nil {
					return lr.skipped, err
				}
			}
			return lr.skipped, nil
		}
		select {
		case <-ctx.Done():
			return lr.skipped, ctx.Err()
		case <-tick.C:
		}
	}
}

// parseSince reads --since: a duration back from now ("10s", "1h30m") or
// an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: the duration must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (10s, 5m) or an RFC 3339 time (2024-01-02T15:04:05Z)", s)
}
