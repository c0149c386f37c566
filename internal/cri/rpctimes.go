package cri

import (
	"context"
	"encoding/json"
	"io"
	"math/bits"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RPCTimes is a gRPC stats handler that keeps, per CRI method, a histogram
// of the time the server spends on a call: from the moment the call's
// stream exists (headers read) until its last byte is handed to the
// transport — decoding, interceptors, the handler, encoding and writing.
// Benchmarks read it through the daemon's debug endpoint to tell the
// server's share of a call from the client's and the scheduler's. Only the
// debug build-up installs it: each call costs a context value and a few
// atomic adds.
type RPCTimes struct {
	methods map[string]*timeHistogram // fixed at construction: read without a lock
}

// NewRPCTimes knows every method of the CRI services.
func NewRPCTimes() *RPCTimes {
	t := &RPCTimes{methods: map[string]*timeHistogram{}}
	for _, sd := range []grpc.ServiceDesc{runtimeapi.RuntimeService_ServiceDesc, runtimeapi.ImageService_ServiceDesc} {
		for _, m := range sd.Methods {
			t.methods["/"+sd.ServiceName+"/"+m.MethodName] = &timeHistogram{}
		}
		for _, s := range sd.Streams {
			t.methods["/"+sd.ServiceName+"/"+s.StreamName] = &timeHistogram{}
		}
	}
	return t
}

type rpcTimesKey struct{}

// TagRPC finds the call's histogram once.
func (t *RPCTimes) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	if h := t.methods[info.FullMethodName]; h != nil {
		return context.WithValue(ctx, rpcTimesKey{}, h)
	}
	return ctx
}

// HandleRPC records a call when it ends.
func (t *RPCTimes) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	if h, _ := ctx.Value(rpcTimesKey{}).(*timeHistogram); h != nil {
		h.add(uint64(max(end.EndTime.Sub(end.BeginTime), 0)))
	}
}

// TagConn and HandleConn: connections are not timed.
func (t *RPCTimes) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn ignores connection events.
func (t *RPCTimes) HandleConn(context.Context, stats.ConnStats) {}

// Buckets are log-linear: 8 per power of two, so a bucket's bound is at
// most 12.5% above any time in it; below 1 µs everything is one bucket.
const (
	subBits    = 3
	minExp     = 10 // 2^10 ns ≈ 1 µs
	maxExp     = 40 // 2^40 ns ≈ 18 min
	numBuckets = (maxExp-minExp)<<subBits + 1
)

type timeHistogram struct {
	count, sum atomic.Uint64
	buckets    [numBuckets]atomic.Uint64
}

func bucketOf(ns uint64) int {
	if ns < 1<<minExp {
		return 0
	}
	e := bits.Len64(ns) - 1
	if e >= maxExp {
		return numBuckets - 1
	}
	sub := int(ns>>(e-subBits)) & (1<<subBits - 1)
	return (e-minExp)<<subBits + sub + 1
}

// bucketBound is the largest time (ns) bucket i holds.
func bucketBound(i int) uint64 {
	if i == 0 {
		return 1<<minExp - 1
	}
	i--
	e, sub := i>>subBits+minExp, uint64(i&(1<<subBits-1))
	return 1<<e + (sub+1)<<(e-subBits) - 1
}

func (h *timeHistogram) add(ns uint64) {
	h.count.Add(1)
	h.sum.Add(ns)
	h.buckets[bucketOf(ns)].Add(1)
}

// RPCTimesSnapshot is what WriteJSON writes: per full method name, the
// calls ended so far. Counts only grow; a reader diffs two snapshots.
type RPCTimesSnapshot struct {
	Unit    string                 `json:"unit"` // "ns"
	Methods map[string]MethodTimes `json:"methods"`
}

// MethodTimes is one method's histogram; Buckets lists the non-empty ones
// in increasing order of Le, the largest time the bucket holds.
type MethodTimes struct {
	Count   uint64       `json:"count"`
	Sum     uint64       `json:"sum"`
	Buckets []TimeBucket `json:"buckets"`
}

// TimeBucket counts the calls that took at most Le ns (and more than the
// previous bucket's Le).
type TimeBucket struct {
	Le uint64 `json:"le"`
	N  uint64 `json:"n"`
}

// Snapshot reads every method that has been called.
func (t *RPCTimes) Snapshot() RPCTimesSnapshot {
	out := RPCTimesSnapshot{Unit: "ns", Methods: map[string]MethodTimes{}}
	for name, h := range t.methods {
		n := h.count.Load()
		if n == 0 {
			continue
		}
		mt := MethodTimes{Count: n, Sum: h.sum.Load()}
		for i := range h.buckets {
			if c := h.buckets[i].Load(); c > 0 {
				mt.Buckets = append(mt.Buckets, TimeBucket{Le: bucketBound(i), N: c})
			}
		}
		out.Methods[name] = mt
	}
	return out
}

// WriteJSON writes Snapshot as JSON.
func (t *RPCTimes) WriteJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(t.Snapshot())
}
