package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// families gathers the registry by family name.
func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the value of the series of family name with labels (pairs).
func value(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	mf := families(t, m)[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, mt := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range mt.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if got[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case mt.Counter != nil:
			return mt.GetCounter().GetValue()
		case mt.Gauge != nil:
			return mt.GetGauge().GetValue()
		case mt.Histogram != nil:
			return float64(mt.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func TestEveryFamilyIsRegistered(t *testing.T) {
	m := New(Sources{
		Pods:       func() map[string]int { return map[string]int{"ready": 2} },
		Containers: func() map[string]int { return map[string]int{"running": 3, "exited": 1} },
		Monitors:   func() int { return 3 },
	})
	// Labelled families appear with their first observation.
	m.Call("Version", "OK", time.Millisecond)
	m.ContainerStarted("runc")
	m.ContainerExited("Completed")
	m.Recovered("pod", RecoveredOK)
	fams := families(t, m)
	for _, name := range []string{
		"cradle_operations_total", "cradle_operation_duration_seconds", "cradle_image_pulls_total",
		"cradle_image_pull_bytes_total", "cradle_image_pull_duration_seconds", "cradle_image_layers_reused_total",
		"cradle_pods", "cradle_containers", "cradle_container_starts_total", "cradle_container_oom_kills_total",
		"cradle_container_exits_total", "cradle_pod_start_duration_seconds", "cradle_recovered_objects_total",
		"cradle_events_dropped_total", "cradle_monitor_processes",
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if fams[name] == nil {
			t.Errorf("family %s is missing", name)
		}
	}
	if n := testutil.CollectAndCount(m.Registry(), "cradle_image_pulls_total"); n != 3 {
		t.Errorf("pull results before any pull = %d series, want success, failure and cancelled", n)
	}
}

func TestOperations(t *testing.T) {
	m := New(Sources{})
	m.Call("RunPodSandbox", "OK", 2*time.Second)
	m.Call("RunPodSandbox", "OK", time.Second)
	m.Call("RunPodSandbox", "Unavailable", time.Millisecond)
	if v := value(t, m, "cradle_operations_total", "operation", "RunPodSandbox", "code", "OK"); v != 2 {
		t.Errorf("OK calls = %v", v)
	}
	if v := value(t, m, "cradle_operations_total", "operation", "RunPodSandbox", "code", "Unavailable"); v != 1 {
		t.Errorf("Unavailable calls = %v", v)
	}
	if v := value(t, m, "cradle_operation_duration_seconds", "operation", "RunPodSandbox"); v != 3 {
		t.Errorf("observed durations = %v", v)
	}
}

func TestImagePulls(t *testing.T) {
	m := New(Sources{})
	m.PullDone(PullSuccess, time.Second)
	m.PullDone(PullCancelled, time.Second)
	m.PullBytes(1000)
	m.PullBytes(24)
	m.LayerReused()
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"cradle_image_pulls_total", []string{"result", "success"}, 1},
		{"cradle_image_pulls_total", []string{"result", "failure"}, 0},
		{"cradle_image_pulls_total", []string{"result", "cancelled"}, 1},
		{"cradle_image_pull_bytes_total", nil, 1024},
		{"cradle_image_pull_duration_seconds", nil, 2},
		{"cradle_image_layers_reused_total", nil, 1},
	} {
		if v := value(t, m, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
}

func TestContainerLifecycle(t *testing.T) {
	m := New(Sources{})
	m.ContainerStarted("runc")
	m.ContainerStarted("runsc")
	m.ContainerStarted("runc")
	m.ContainerExited("OOMKilled")
	m.ContainerExited("Error")
	if v := value(t, m, "cradle_container_starts_total", "handler", "runc"); v != 2 {
		t.Errorf("runc starts = %v", v)
	}
	if v := value(t, m, "cradle_container_oom_kills_total"); v != 1 {
		t.Errorf("OOM kills = %v", v)
	}
	if v := value(t, m, "cradle_container_exits_total", "reason", "Error"); v != 1 {
		t.Errorf("Error exits = %v", v)
	}
}

func TestPodStartRecoveryAndEvents(t *testing.T) {
	m := New(Sources{})
	m.PodReady(300 * time.Millisecond)
	m.Recovered("container", RecoveredFailed)
	m.Recovered("container", RecoveredFailed)
	m.Recovered("pod", RecoveredSetAside)
	m.EventsDropped(3)
	if v := value(t, m, "cradle_pod_start_duration_seconds"); v != 1 {
		t.Errorf("pod starts observed = %v", v)
	}
	if v := value(t, m, "cradle_recovered_objects_total", "kind", "container", "result", "failed"); v != 2 {
		t.Errorf("failed container recoveries = %v", v)
	}
	if v := value(t, m, "cradle_recovered_objects_total", "kind", "pod", "result", "set_aside"); v != 1 {
		t.Errorf("pod records set aside = %v", v)
	}
	if v := value(t, m, "cradle_events_dropped_total"); v != 3 {
		t.Errorf("events dropped = %v", v)
	}
}

// The gauges are read at scrape time: each scrape sees the stores as they
// are then, and every known state is reported even at zero.
func TestStateGaugesReadAtScrape(t *testing.T) {
	pods := map[string]int{"ready": 1}
	monitors := 1
	m := New(Sources{
		Pods:       func() map[string]int { return pods },
		Containers: func() map[string]int { return map[string]int{"running": 1} },
		Monitors:   func() int { return monitors },
	})
	if v := value(t, m, "cradle_pods", "state", "ready"); v != 1 {
		t.Errorf("ready pods = %v", v)
	}
	if v := value(t, m, "cradle_pods", "state", "notready"); v != 0 {
		t.Errorf("notready pods = %v", v)
	}
	if v := value(t, m, "cradle_containers", "state", "created"); v != 0 {
		t.Errorf("created containers = %v", v)
	}
	pods = map[string]int{"ready": 0, "notready": 1}
	monitors = 0
	if v := value(t, m, "cradle_pods", "state", "notready"); v != 1 {
		t.Errorf("notready pods after the change = %v", v)
	}
	if v := value(t, m, "cradle_monitor_processes"); v != 0 {
		t.Errorf("monitors after the change = %v", v)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP cradle_containers Containers, by state.
# TYPE cradle_containers gauge
cradle_containers{state="created"} 0
cradle_containers{state="exited"} 0
cradle_containers{state="running"} 1
`), "cradle_containers"); err != nil {
		t.Error(err)
	}
}
