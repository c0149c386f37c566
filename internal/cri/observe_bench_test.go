package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/cradle-runtime/cradle/internal/metrics"
)

// The interceptor's cost per call with the metrics hook and tracing off
// (the default), against no observer: go test -bench Interceptor ./internal/cri
func BenchmarkInterceptor(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/ListContainers"}
	h := func(context.Context, any) (any, error) { return nil, nil }
	for _, c := range []struct {
		name string
		obs  CallObserver
	}{{"none", noCalls{}}, {"metrics", metrics.New(metrics.Sources{})}} {
		b.Run(c.name, func(b *testing.B) {
			ic := &interceptors{log: quiet, rl: newRateLog(logWindow, logKeys), obs: c.obs}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ic.unary(ctx, nil, info, h)
			}
		})
	}
}
