package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/stats"
)

func TestTimeBucketsBoundEveryTime(t *testing.T) {
	for _, ns := range []uint64{0, 1, 1023, 1024, 1025, 1500, 2047, 2048, 99_999, 1_000_000, 123_456_789, 1 << 39, 1<<40 - 1} {
		b := bucketOf(ns)
		if bound := bucketBound(b); ns > bound {
			t.Errorf("%d ns in bucket %d whose bound is %d", ns, b, bound)
		}
		if b > 0 && ns <= bucketBound(b-1) {
			t.Errorf("%d ns in bucket %d, but the bucket below holds up to %d", ns, b, bucketBound(b-1))
		}
		if b > 0 && float64(bucketBound(b)) > 1.126*float64(ns) {
			t.Errorf("%d ns: bound %d is more than 12.5%% above", ns, bucketBound(b))
		}
	}
	if bucketOf(1<<50) != numBuckets-1 {
		t.Error("a huge time is not in the last bucket")
	}
}

func TestRPCTimesRecordsEndedCallsPerMethod(t *testing.T) {
	rt := NewRPCTimes()
	call := func(method string, d time.Duration) {
		ctx := rt.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: method})
		begin := time.Now()
		rt.HandleRPC(ctx, &stats.Begin{BeginTime: begin})
		rt.HandleRPC(ctx, &stats.End{BeginTime: begin, EndTime: begin.Add(d)})
	}
	call("/runtime.v1.RuntimeService/ListContainers", 100*time.Microsecond)
	call("/runtime.v1.RuntimeService/ListContainers", 3*time.Millisecond)
	call("/runtime.v1.ImageService/ListImages", time.Millisecond)
	call("/not.a/Method", time.Millisecond)
	var buf bytes.Buffer
	if err := rt.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var snap RPCTimesSnapshot
	if err := json.Unmarshal(buf.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	lc := snap.Methods["/runtime.v1.RuntimeService/ListContainers"]
	if lc.Count != 2 || lc.Sum != uint64(3100*time.Microsecond) || len(lc.Buckets) != 2 {
		t.Fatalf("ListContainers: %+v", lc)
	}
	if b := lc.Buckets; b[0].N != 1 || b[0].Le < 100_000 || b[1].Le < 3_000_000 || b[0].Le >= b[1].Le {
		t.Fatalf("ListContainers buckets: %+v", b)
	}
	if len(snap.Methods) != 2 || snap.Methods["/runtime.v1.ImageService/ListImages"].Count != 1 {
		t.Fatalf("methods: %+v", snap.Methods)
	}
}
