package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// sample is what the daemon process holds at one moment. Goroutines is -1
// where the daemon does not tell.
type sample struct {
	fds, threads, goroutines int
	rssKiB, pssKiB           int64
}

// metric is one figure of a sample, for the report and the leak check.
type metric struct {
	name string
	get  func(sample) int64
	// limit is the growth from the first to the last checkpoint above
	// which the figure is flagged: absolute, or a percentage of the first
	// value when percent.
	limit   float64
	percent bool
	kib     bool
}

// limits are the leak thresholds (flags).
type limits struct {
	fds, threads, goroutines int
	memPercent               float64
}

func metrics(l limits) []metric {
	return []metric{
		{name: "fds", get: func(s sample) int64 { return int64(s.fds) }, limit: float64(l.fds)},
		{name: "threads", get: func(s sample) int64 { return int64(s.threads) }, limit: float64(l.threads)},
		{name: "goroutines", get: func(s sample) int64 { return int64(s.goroutines) }, limit: float64(l.goroutines)},
		{name: "RSS", get: func(s sample) int64 { return s.rssKiB }, limit: l.memPercent, percent: true, kib: true},
		{name: "PSS", get: func(s sample) int64 { return s.pssKiB }, limit: l.memPercent, percent: true, kib: true},
	}
}

// grew tells whether a figure grew past the metric's limit from first to
// last; an unknown figure (negative) never does.
func (m metric) grew(first, last int64) bool {
	if first < 0 || last < 0 {
		return false
	}
	d := float64(last - first)
	if m.percent {
		if first == 0 {
			return d > 0
		}
		return d/float64(first)*100 > m.limit
	}
	return d > m.limit
}

// goroutineCounter asks a daemon for its goroutine count.
type goroutineCounter func(ctx context.Context) (int, error)

// sampleDaemon reads pid's fds, threads and memory from /proc, and its
// goroutines from count when there is one.
func sampleDaemon(ctx context.Context, pid int, count goroutineCounter) (sample, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return sample{}, err
	}
	s := sample{fds: len(ents), goroutines: -1}
	st, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return sample{}, err
	}
	s.threads, err = parseThreads(st)
	st.Close()
	if err != nil {
		return sample{}, err
	}
	r, err := benchkit.ReadRollup(pid)
	if err != nil {
		return sample{}, err
	}
	s.rssKiB, s.pssKiB = r.RssKiB, r.PssKiB
	if count != nil {
		if g, err := count(ctx); err == nil {
			s.goroutines = g
		}
	}
	return s, nil
}

// parseThreads reads the Threads line of /proc/PID/status.
func parseThreads(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Threads:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no Threads line")
}

// settledSample takes three samples settle apart and keeps the median of
// each figure: a daemon closes a connection or frees pages a moment after
// its last call.
func settledSample(ctx context.Context, pid int, count goroutineCounter, settle time.Duration) (sample, error) {
	ss := make([]sample, 0, 3)
	for range 3 {
		select {
		case <-ctx.Done():
			return sample{}, ctx.Err()
		case <-time.After(settle):
		}
		s, err := sampleDaemon(ctx, pid, count)
		if err != nil {
			return sample{}, err
		}
		ss = append(ss, s)
	}
	return medianSample(ss), nil
}

// medianSample is the median of each figure on its own.
func medianSample(ss []sample) sample {
	med := func(get func(sample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return sample{
		fds:        int(med(func(s sample) int64 { return int64(s.fds) })),
		threads:    int(med(func(s sample) int64 { return int64(s.threads) })),
		goroutines: int(med(func(s sample) int64 { return int64(s.goroutines) })),
		rssKiB:     med(func(s sample) int64 { return s.rssKiB }),
		pssKiB:     med(func(s sample) int64 { return s.pssKiB }),
	}
}

// pprofGoroutines counts goroutines through the Go pprof endpoint a daemon
// serves on a unix socket (cradle with CRADLE_DEBUG_ADDR=unix:PATH): the
// first line of the debug=1 goroutine profile is "goroutine profile: total N".
func pprofGoroutines(socket string) goroutineCounter {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
			DisableKeepAlives: true, // no connection of ours stays in the daemon's fd count
		},
	}
	return func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://cradle/debug/pprof/goroutine?debug=1", nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("goroutine profile: %s", resp.Status)
		}
		return parseGoroutineTotal(resp.Body)
	}
}

// parseGoroutineTotal reads "goroutine profile: total N" from the first
// line of a debug=1 goroutine profile.
func parseGoroutineTotal(r io.Reader) (int, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return 0, fmt.Errorf("empty goroutine profile: %w", err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.Atoi(v)
}
