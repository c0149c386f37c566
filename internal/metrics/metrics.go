// Package metrics owns cradle's Prometheus collectors and the /metrics
// server. Domain packages never import it nor client_golang: each declares
// the few hooks it calls (an Observer interface or a func in its Config) and
// the daemon hands them a *Metrics, whose methods are those hooks. Counters
// and histograms are updated where things happen (an atomic add); the pod,
// container and monitor gauges are read from the managers' in-memory
// indexes when Prometheus scrapes, so nothing on the CRI path waits for a
// scrape nor pays for the gauges.
package metrics

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pull results of cradle_image_pulls_total.
const (
	PullSuccess   = "success"
	PullFailure   = "failure"
	PullCancelled = "cancelled"
)

// Results of cradle_recovered_objects_total: what the background
// reconciliation after a restart did with one object.
const (
	// RecoveredOK: the host matched the record, or was brought in line
	// (a half-done create undone, a stop or removal finished, an exit that
	// happened while the daemon was down recorded).
	RecoveredOK = "ok"
	// RecoveredFailed: the reconciliation failed; the object is left for
	// Stop/Remove to retry, or for `cradle check`.
	RecoveredFailed = "failed"
	// RecoveredSetAside: the record was unreadable and was renamed *.corrupt.
	RecoveredSetAside = "set_aside"
	// RecoveredOrphan: something without a record (a pod dir, a CNI
	// attachment, a container's state) was removed.
	RecoveredOrphan = "orphan_removed"
)

// Histogram buckets, in seconds. The default buckets (5 ms to 10 s) cut
// off what matters to a runtime: pulls and pod starts take minutes at
// worst, and List/Status calls take well under a millisecond.
var (
	// OperationBuckets span a memory-only List (≈100 µs) to a slow pull or
	// a stop with a long grace period.
	OperationBuckets = []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// PullBuckets span a cached image (≈10 ms) to a multi-GB pull.
	PullBuckets = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800}
	// PodStartBuckets span a host-network pod (≈5 ms) to CNI's 4 m bound.
	PodStartBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 240}
)

// Sources are the in-memory counts the gauges report at scrape time. Each
// must be quick and hold no lock for long; nil reports nothing.
type Sources struct {
	// Pods counts pods by state ("ready", "notready").
	Pods func() map[string]int
	// Containers counts containers by state ("created", "running", "exited").
	Containers func() map[string]int
	// Monitors counts the conmon processes the daemon supervises.
	Monitors func() int
}

// Metrics holds every cradle_* family in a registry of its own (not the
// process-wide default, which libraries may write to).
type Metrics struct {
	reg *prometheus.Registry

	operations    *prometheus.CounterVec
	opDuration    *prometheus.HistogramVec
	pulls         *prometheus.CounterVec
	pullBytes     prometheus.Counter
	pullDuration  prometheus.Histogram
	layersReused  prometheus.Counter
	starts        *prometheus.CounterVec
	oomKills      prometheus.Counter
	exits         *prometheus.CounterVec
	podStart      prometheus.Histogram
	recovered     *prometheus.CounterVec
	eventsDropped prometheus.Counter
}

// New registers every family, the gauges reading src.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cradle_operations_total", Help: "CRI calls answered, by RPC and gRPC code.",
		}, []string{"operation", "code"}),
		opDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cradle_operation_duration_seconds", Help: "Time to answer a CRI call, by RPC.",
			Buckets: OperationBuckets,
		}, []string{"operation"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cradle_image_pulls_total", Help: "Image pulls (one per download, however many callers share it), by result.",
		}, []string{"result"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cradle_image_pull_bytes_total", Help: "Compressed layer bytes received from registries.",
		}),
		pullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cradle_image_pull_duration_seconds", Help: "Time an image pull took, whatever its result.",
			Buckets: PullBuckets,
		}),
		layersReused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cradle_image_layers_reused_total", Help: "Layers a pull found already unpacked and did not download.",
		}),
		starts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cradle_container_starts_total", Help: "Containers started, by runtime handler.",
		}, []string{"handler"}),
		oomKills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cradle_container_oom_kills_total", Help: "Containers whose exit was an OOM kill.",
		}),
		exits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cradle_container_exits_total", Help: "Container exits recorded, by reason (Completed, Error, OOMKilled).",
		}, []string{"reason"}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cradle_pod_start_duration_seconds", Help: "Time from RunPodSandbox's start to the pod being READY.",
			Buckets: PodStartBuckets,
		}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cradle_recovered_objects_total", Help: "Objects reconciled after a daemon start, by kind (pod, container) and result (ok, failed, set_aside, orphan_removed).",
		}, []string{"kind", "result"}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cradle_events_dropped_total", Help: "Container events a GetContainerEvents subscriber missed (it fell behind and was dropped) or that aged out of the backlog kept while none listened.",
		}),
	}
	m.reg.MustRegister(m.operations, m.opDuration, m.pulls, m.pullBytes, m.pullDuration, m.layersReused,
		m.starts, m.oomKills, m.exits, m.podStart, m.recovered, m.eventsDropped,
		newStateCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Families that exist before anything happened: a dashboard's rate()
	// starts from 0 rather than from the first failure.
	for _, r := range []string{PullSuccess, PullFailure, PullCancelled} {
		m.pulls.WithLabelValues(r)
	}
	for _, r := range []string{"Completed", "Error", "OOMKilled"} {
		m.exits.WithLabelValues(r)
	}
	for _, kind := range []string{"pod", "container"} {
		for _, r := range []string{RecoveredOK, RecoveredFailed, RecoveredSetAside, RecoveredOrphan} {
			m.recovered.WithLabelValues(kind, r)
		}
	}
	return m
}

// Registry is the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus' text and protobuf formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Call counts one CRI call: method is the RPC's short name
// (RunPodSandbox), code the gRPC code's name (OK, NotFound).
func (m *Metrics) Call(method, code string, took time.Duration) {
	m.operations.WithLabelValues(method, code).Inc()
	m.opDuration.WithLabelValues(method).Observe(took.Seconds())
}

// PullDone counts a finished pull (image.Observer).
func (m *Metrics) PullDone(result string, took time.Duration) {
	m.pulls.WithLabelValues(result).Inc()
	m.pullDuration.Observe(took.Seconds())
}

// PullBytes counts compressed bytes received (image.Observer).
func (m *Metrics) PullBytes(n int) { m.pullBytes.Add(float64(n)) }

// LayerReused counts a layer a pull did not need to fetch (image.Observer).
func (m *Metrics) LayerReused() { m.layersReused.Inc() }

// ContainerStarted counts a start (container.Observer).
func (m *Metrics) ContainerStarted(handler string) { m.starts.WithLabelValues(handler).Inc() }

// ContainerExited counts a recorded exit (container.Observer); reason
// OOMKilled is an OOM kill too.
func (m *Metrics) ContainerExited(reason string) {
	m.exits.WithLabelValues(reason).Inc()
	if strings.EqualFold(reason, "OOMKilled") {
		m.oomKills.Inc()
	}
}

// PodReady observes the time from RunPodSandbox's start to READY
// (sandbox.Observer).
func (m *Metrics) PodReady(took time.Duration) { m.podStart.Observe(took.Seconds()) }

// Recovered counts one object reconciled after a start (container and
// sandbox Observer).
func (m *Metrics) Recovered(kind, result string) { m.recovered.WithLabelValues(kind, result).Inc() }

// EventsDropped counts events a subscriber or the backlog lost (events.Config.OnDrop).
func (m *Metrics) EventsDropped(n int) { m.eventsDropped.Add(float64(n)) }
