package cri

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

type recordedCalls struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordedCalls) Call(method, code string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, method+" "+code)
}

func TestInterceptorCountsEveryCallWithItsCode(t *testing.T) {
	obs := &recordedCalls{}
	ic := &interceptors{log: quiet, rl: newRateLog(logWindow, logKeys), obs: obs}
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	for _, h := range []grpc.UnaryHandler{
		func(context.Context, any) (any, error) { return "ok", nil },
		func(context.Context, any) (any, error) { return nil, errdefs.Unavailable("CNI") },
		func(context.Context, any) (any, error) { panic("boom") },
	} {
		_, _ = ic.unary(context.Background(), nil, info, h)
	}
	want := []string{"RunPodSandbox OK", "RunPodSandbox Unavailable", "RunPodSandbox Internal"}
	if len(obs.calls) != len(want) {
		t.Fatalf("calls = %v, want %v", obs.calls, want)
	}
	for i := range want {
		if obs.calls[i] != want[i] {
			t.Errorf("call %d = %q, want %q", i, obs.calls[i], want[i])
		}
	}
}

// kubelet's span, sent as W3C trace context in the call's metadata, is the
// parent of the call's span, which is the parent of the handler's spans.
func TestInterceptorSpanFollowsCallersTraceContext(t *testing.T) {
	r := testkit.NewOTLPReceiver(t)
	if err := tracing.Apply(config.Tracing{Endpoint: r.Addr}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tracing.Shutdown(nil) })
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	ctx := metadata.NewIncomingContext(context.Background(),
		metadata.Pairs("traceparent", "00-"+traceID+"-"+parentID+"-01"))
	ic := &interceptors{log: quiet, rl: newRateLog(logWindow, logKeys), obs: noCalls{}}
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.ImageService/PullImage"}
	_, err := ic.unary(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
		_, s := tracing.Start(ctx, "image.layer.download")
		s.End()
		return nil, errdefs.NotFound("manifest unknown")
	})
	if err == nil {
		t.Fatal("the handler's error was lost")
	}
	var spans []testkit.Span
	deadline := time.Now().Add(10 * time.Second)
	for len(spans) < 2 && time.Now().Before(deadline) {
		_ = tracing.ForceFlush(context.Background())
		spans = r.Spans()
		time.Sleep(10 * time.Millisecond)
	}
	var rpc testkit.Span
	for _, s := range spans {
		if s.Name == "runtime.v1.ImageService/PullImage" {
			rpc = s
		}
	}
	if rpc.TraceID != traceID || rpc.ParentSpanID != parentID || !rpc.Failed ||
		rpc.Attrs["rpc.method"] != "PullImage" || rpc.Attrs["rpc.grpc.status_code"] != "5" {
		t.Errorf("call span = %+v", rpc)
	}
	if kids := testkit.Children(spans, rpc.SpanID); len(kids) != 1 || kids[0].Name != "image.layer.download" {
		t.Errorf("children of the call span = %+v (all: %+v)", kids, spans)
	}
}
