package tracing

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

const (
	kubeletTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	kubeletSpan  = "00f067aa0ba902b7"
)

func traceparent(sampled bool) func(string) []string {
	flags := "00"
	if sampled {
		flags = "01"
	}
	return func(key string) []string {
		if key == "traceparent" {
			return []string{"00-" + kubeletTrace + "-" + kubeletSpan + "-" + flags}
		}
		return nil
	}
}

// spansOf waits for the receiver to hold n spans.
func spansOf(t *testing.T, r *testkit.OTLPReceiver, n int) []testkit.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if s := r.Spans(); len(s) >= n || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOffCostsNothing(t *testing.T) {
	t.Cleanup(func() { Shutdown(nil) })
	if err := Apply(config.Tracing{}, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, span := Start(ctx, "x")
	if got != ctx || span.IsRecording() || Enabled() {
		t.Errorf("off: Start changed ctx or records")
	}
	got, _ = StartServer(ctx, "rpc", traceparent(true))
	if got != ctx {
		t.Errorf("off: StartServer changed ctx")
	}
	allocs := testing.AllocsPerRun(100, func() {
		c, s := Start(ctx, "x", attribute.String("k", "v"))
		End(s, nil)
		_ = c
	})
	if allocs > 1 { // the variadic attribute slice at most
		t.Errorf("off: %v allocations per span", allocs)
	}
	// The call span of every CRI call has no attributes while off.
	if allocs := testing.AllocsPerRun(100, func() {
		_, s := Start(ctx, "")
		End(s, nil)
	}); allocs != 0 {
		t.Errorf("off: %v allocations per span without attributes", allocs)
	}
}

func TestKubeletParentIsFollowed(t *testing.T) {
	r := testkit.NewOTLPReceiver(t)
	t.Cleanup(func() { Shutdown(nil) })
	// Rate 0: only callers' sampled spans are traced.
	if err := Apply(config.Tracing{Endpoint: r.Addr}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, rpc := StartServer(context.Background(), "runtime.v1.RuntimeService/RunPodSandbox", traceparent(true))
	_, child := Start(ctx, "cni.add", attribute.String("pod", "p"))
	End(child, errors.New("plugin failed"))
	End(rpc, nil)
	// Not sampled by the caller, nor by a rate of 0.
	_, un := StartServer(context.Background(), "unsampled", traceparent(false))
	End(un, nil)
	_, root := Start(context.Background(), "no parent")
	End(root, nil)

	spans := spansOf(t, r, 2)
	if len(spans) != 2 {
		t.Fatalf("spans = %+v, want the RPC and its child", spans)
	}
	var srv testkit.Span
	for _, s := range spans {
		if s.Name == "runtime.v1.RuntimeService/RunPodSandbox" {
			srv = s
		}
	}
	if srv.TraceID != kubeletTrace || srv.ParentSpanID != kubeletSpan {
		t.Errorf("RPC span %+v is not the child of kubelet's span", srv)
	}
	kids := testkit.Children(spans, srv.SpanID)
	if len(kids) != 1 || kids[0].Name != "cni.add" || !kids[0].Failed || kids[0].Attrs["pod"] != "p" {
		t.Errorf("children of the RPC span = %+v", kids)
	}
}

func TestRateSamplesRootsAndApplySwaps(t *testing.T) {
	r1, r2 := testkit.NewOTLPReceiver(t), testkit.NewOTLPReceiver(t)
	t.Cleanup(func() { Shutdown(nil) })
	if err := Apply(config.Tracing{Endpoint: r1.Addr, SamplingRatePerMillion: 1_000_000}, nil); err != nil {
		t.Fatal(err)
	}
	_, s := Start(context.Background(), "one")
	End(s, nil)
	if got := spansOf(t, r1, 1); len(got) != 1 || got[0].Name != "one" || got[0].ParentSpanID != "" {
		t.Fatalf("receiver 1 got %+v", got)
	}
	// A reload to another collector: new spans go there only.
	if err := Apply(config.Tracing{Endpoint: "http://" + r2.Addr, SamplingRatePerMillion: 1_000_000}, nil); err != nil {
		t.Fatal(err)
	}
	_, s = Start(context.Background(), "two")
	End(s, nil)
	if got := spansOf(t, r2, 1); len(got) != 1 || got[0].Name != "two" {
		t.Fatalf("receiver 2 got %+v", got)
	}
	if got := r1.Spans(); len(got) != 1 {
		t.Errorf("receiver 1 got spans after the swap: %+v", got)
	}
	// Off again.
	if err := Apply(config.Tracing{}, nil); err != nil {
		t.Fatal(err)
	}
	if Enabled() {
		t.Error("tracing still on after an empty endpoint")
	}
}
