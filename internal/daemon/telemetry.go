package daemon

import (
	"errors"
	"log/slog"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/metrics"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

// telemetry is the daemon's metrics and tracing. The collectors exist from
// the start (counting costs an atomic add whether or not anyone scrapes);
// Apply puts [metrics] and [tracing] in force, at start and on a reload.
type telemetry struct {
	metrics *metrics.Metrics
	server  *metrics.Server
	log     *slog.Logger
	// The stores the gauges read, set once the managers exist and before
	// the server can serve a scrape.
	pods       *sandbox.Manager
	containers *container.Manager
	runtimes   *handlers.Set
}

func newTelemetry(log *slog.Logger) *telemetry {
	t := &telemetry{log: log}
	t.metrics = metrics.New(metrics.Sources{
		Pods:       t.podCounts,
		Containers: t.containerCounts,
		Monitors:   t.monitors,
	})
	t.server = metrics.NewServer(t.metrics, log.With("component", "metrics"))
	return t
}

// Apply puts the [metrics] and [tracing] of cfg in force: the metrics
// listener moves only when its address or TLS being on changes (a renewed
// certificate is read again either way), and the tracer is swapped. What
// fails keeps its old setting; the other part still applies.
func (t *telemetry) Apply(cfg config.Config) error {
	return errors.Join(t.server.Apply(cfg.Metrics), tracing.Apply(cfg.Tracing, t.log))
}

// Close stops the metrics server and flushes the spans still held.
func (t *telemetry) Close() {
	t.server.Close()
	tracing.Shutdown(t.log)
}

func (t *telemetry) podCounts() map[string]int {
	if t.pods == nil {
		return nil
	}
	out := map[string]int{}
	for st, n := range t.pods.CountByState() {
		out[string(st)] += n
	}
	return out
}

func (t *telemetry) containerCounts() map[string]int {
	if t.containers == nil {
		return nil
	}
	out := map[string]int{}
	for st, n := range t.containers.CountByState() {
		out[string(st)] += n
	}
	return out
}

func (t *telemetry) monitors() int {
	n := 0
	if t.runtimes == nil {
		return 0
	}
	for _, rt := range t.runtimes.All() {
		n += rt.Monitors()
	}
	return n
}
