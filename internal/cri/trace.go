package cri

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/cradle-runtime/cradle/internal/tracing"
)

// startCallSpan starts the server span of a CRI call, the child of the
// span kubelet sent in the call's W3C trace context metadata (traceparent),
// named after OpenTelemetry's RPC conventions: "runtime.v1.RuntimeService/
// RunPodSandbox". While tracing is off it costs one atomic load.
func startCallSpan(ctx context.Context, fullMethod string) (context.Context, trace.Span) {
	if !tracing.Enabled() {
		return tracing.Start(ctx, "") // the no-op span, ctx unchanged
	}
	name := strings.TrimPrefix(fullMethod, "/")
	service, method, _ := strings.Cut(name, "/")
	md, _ := metadata.FromIncomingContext(ctx)
	return tracing.StartServer(ctx, name, md.Get,
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method))
}

// endCallSpan records the call's gRPC code (the mapped one kubelet sees)
// and ends its span.
func endCallSpan(span trace.Span, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(status.Code(err))))
	}
	tracing.End(span, err)
}
