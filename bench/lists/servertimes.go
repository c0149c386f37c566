package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// timesSnapshot is cradle's /debug/cri/times answer (cri.RPCTimesSnapshot):
// per method, how many calls ended within each bucket's bound (ns).
type timesSnapshot struct {
	Methods map[string]struct {
		Count   uint64 `json:"count"`
		Buckets []struct {
			Le uint64 `json:"le"`
			N  uint64 `json:"n"`
		} `json:"buckets"`
	} `json:"methods"`
}

// serverTimes are cradle's own times for the calls of one cell.
type serverTimes struct {
	n        uint64
	p50, p99 time.Duration
}

func (s *side) serverTimes(ctx context.Context) (*timesSnapshot, error) {
	if s.debug == nil {
		return nil, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://cradle/debug/cri/times", nil)
	resp, err := s.debug.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s (a cradle without the endpoint?)", resp.Status)
	}
	var t timesSnapshot
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return nil, err
	}
	return &t, nil
}

// since is the method's calls between before and t, with nearest-rank
// percentiles: each is the bound of the bucket holding that rank, at most
// 12.5% above the real time.
func (t *timesSnapshot) since(before *timesSnapshot, method string) serverTimes {
	prev := map[uint64]uint64{}
	for _, b := range before.Methods[method].Buckets {
		prev[b.Le] = b.N
	}
	type bucket struct{ le, n uint64 }
	var bs []bucket
	var total uint64
	for _, b := range t.Methods[method].Buckets { // in increasing order
		if n := b.N - prev[b.Le]; n > 0 {
			bs = append(bs, bucket{b.Le, n})
			total += n
		}
	}
	rank := func(p float64) time.Duration {
		want := uint64(p/100*float64(total) + 0.999999)
		var seen uint64
		for _, b := range bs {
			seen += b.n
			if seen >= max(want, 1) {
				return time.Duration(b.le)
			}
		}
		return 0
	}
	return serverTimes{n: total, p50: rank(50), p99: rank(99)}
}
