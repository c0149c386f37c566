package testkit

import (
	"context"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
)

// Span is one span an OTLPReceiver received, its IDs in hex.
type Span struct {
	Name         string
	TraceID      string
	SpanID       string
	ParentSpanID string
	Attrs        map[string]string // string, int and bool values, printed
	Failed       bool              // status code ERROR
}

// OTLPReceiver is an OTLP/gRPC trace collector on 127.0.0.1 that keeps what
// it is sent, for tests of a tracer's exports.
type OTLPReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	Addr string // host:port

	mu    sync.Mutex
	spans []Span
}

// NewOTLPReceiver starts a receiver that stops with the test.
func NewOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &OTLPReceiver{Addr: lis.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r
}

// Export implements the collector's TraceService.
func (r *OTLPReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Name:         s.GetName(),
					TraceID:      hex.EncodeToString(s.GetTraceId()),
					SpanID:       hex.EncodeToString(s.GetSpanId()),
					ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Attrs:        map[string]string{},
					Failed:       s.GetStatus().GetCode() == 2, // STATUS_CODE_ERROR
				}
				for _, kv := range s.GetAttributes() {
					switch v := kv.GetValue().GetValue().(type) {
					case *commonpb.AnyValue_StringValue:
						sp.Attrs[kv.GetKey()] = v.StringValue
					case *commonpb.AnyValue_IntValue:
						sp.Attrs[kv.GetKey()] = strconv.FormatInt(v.IntValue, 10)
					case *commonpb.AnyValue_BoolValue:
						sp.Attrs[kv.GetKey()] = strconv.FormatBool(v.BoolValue)
					}
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// Spans returns a copy of every span received so far.
func (r *OTLPReceiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Children returns the spans whose parent is the span with ID parent.
func Children(spans []Span, parent string) []Span {
	var out []Span
	for _, s := range spans {
		if s.ParentSpanID == parent {
			out = append(out, s)
		}
	}
	return out
}

// Descendants returns every span below the span with ID root.
func Descendants(spans []Span, root string) []Span {
	var out []Span
	for _, c := range Children(spans, root) {
		out = append(out, c)
		out = append(out, Descendants(spans, c.SpanID)...)
	}
	return out
}
