// Package tracing is cradle's OpenTelemetry tracer: spans of CRI calls and of
// the real work below them (CNI, the OCI runtime and conmon, layer downloads
// and unpacks, spec generation), exported over OTLP/gRPC.
//
// One process-wide tracer is swapped by Apply, so a reload can turn tracing
// on, off or elsewhere without rebuilding the gRPC server or the managers
// that hold no tracer of their own. While tracing is off, Start is an atomic
// load and returns its ctx unchanged: nothing is allocated on the CRI path.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/version"
)

// scope names cradle's instrumentation in every span.
const scope = "github.com/cradle-runtime/cradle"

// shutdownTimeout bounds the flush of a provider being replaced or stopped:
// an unreachable collector must not hold up a reload or the daemon's exit.
const shutdownTimeout = 5 * time.Second

// active is the tracer in force; nil while tracing is off.
type active struct {
	tracer   trace.Tracer
	provider *sdktrace.TracerProvider
	cfg      config.Tracing
}

var (
	current atomic.Pointer[active]
	applyMu sync.Mutex               // serialises Apply and Shutdown
	noSpan  trace.Span = noop.Span{} // boxed once: returning it allocates nothing
	// w3c reads and writes the traceparent/tracestate headers kubelet sends.
	w3c = propagation.TraceContext{}
)

// Apply puts cfg in force: an empty endpoint turns tracing off, anything
// else builds a provider exporting to it and swaps it in. The provider it
// replaces flushes its spans in the background. Applying the configuration
// already in force does nothing.
func Apply(cfg config.Tracing, log *slog.Logger) error {
	applyMu.Lock()
	defer applyMu.Unlock()
	old := current.Load()
	if (old == nil && cfg.Endpoint == "") || (old != nil && old.cfg == cfg) {
		return nil
	}
	var next *active
	if cfg.Endpoint != "" {
		p, err := newProvider(cfg)
		if err != nil {
			return err
		}
		next = &active{tracer: p.Tracer(scope), provider: p, cfg: cfg}
	}
	current.Store(next)
	if log != nil {
		if next == nil {
			log.Info("tracing off")
		} else {
			log.Info("tracing on", "endpoint", cfg.Endpoint, "samplingRatePerMillion", cfg.SamplingRatePerMillion)
		}
	}
	if old != nil {
		go shutdown(old.provider, log)
	}
	return nil
}

// Shutdown turns tracing off and flushes what the provider in force holds.
func Shutdown(log *slog.Logger) {
	applyMu.Lock()
	defer applyMu.Unlock()
	if old := current.Swap(nil); old != nil {
		shutdown(old.provider, log)
	}
}

func shutdown(p *sdktrace.TracerProvider, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil && log != nil {
		log.Warn("tracing: flushing spans at shutdown failed", "err", err)
	}
}

func newProvider(cfg config.Tracing) (*sdktrace.TracerProvider, error) {
	opts := []otlptracegrpc.Option{}
	if u, err := url.Parse(cfg.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		// http:// is plaintext, https:// TLS with the system's roots.
		opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
	} else {
		// A bare host:port is a local agent, as CRI-O's tracing_endpoint.
		opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithInsecure())
	}
	// New does not dial: an unreachable collector costs dropped spans,
	// never a failed start.
	exp, err := otlptracegrpc.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "cradle"),
		attribute.String("service.version", version.Version),
	)
	rate := float64(cfg.SamplingRatePerMillion) / 1e6
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(rate))),
	), nil
}

// Enabled says whether spans are being made at all.
func Enabled() bool { return current.Load() != nil }

// Start starts a span named name as a child of ctx's span. While tracing is
// off it returns ctx itself and a span whose methods do nothing.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	a := current.Load()
	if a == nil {
		return ctx, noSpan
	}
	return a.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartServer starts the span of an incoming call. Its parent is the span
// the caller sent in W3C trace context headers (header returns the values
// of a header, lower case), so that a sampled kubelet span is followed.
func StartServer(ctx context.Context, name string, header func(key string) []string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	a := current.Load()
	if a == nil {
		return ctx, noSpan
	}
	ctx = w3c.Extract(ctx, headerCarrier(header))
	return a.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
}

// End ends span, marking it failed with err if err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// headerCarrier adapts a header lookup to the propagator; extraction only.
type headerCarrier func(key string) []string

func (h headerCarrier) Get(key string) string {
	if v := h(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (h headerCarrier) Set(string, string) {}

func (h headerCarrier) Keys() []string { return nil }

// errNoTracing is returned by ForceFlush while tracing is off.
var errNoTracing = errors.New("tracing is off")

// ForceFlush exports the spans the provider in force still holds.
func ForceFlush(ctx context.Context) error {
	a := current.Load()
	if a == nil {
		return errNoTracing
	}
	return a.provider.ForceFlush(ctx)
}
