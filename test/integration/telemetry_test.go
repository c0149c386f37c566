package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// freePort returns a loopback port nothing listens on: the daemon's config
// names it, and the test scrapes it.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// scrapeMetrics GETs url and parses the Prometheus text it answers.
func scrapeMetrics(t *testing.T, client *http.Client, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// metricValue is the value of the series of family name whose labels
// include the given pairs (a histogram's sample count), and whether one
// exists.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// metricFamilies are every family the issue names, plus samples of the Go
// and process collectors.
var metricFamilies = []string{
	"cradle_operations_total", "cradle_operation_duration_seconds",
	"cradle_image_pulls_total", "cradle_image_pull_bytes_total", "cradle_image_pull_duration_seconds",
	"cradle_image_layers_reused_total", "cradle_pods", "cradle_containers",
	"cradle_container_starts_total", "cradle_container_oom_kills_total", "cradle_container_exits_total",
	"cradle_pod_start_duration_seconds", "cradle_recovered_objects_total", "cradle_events_dropped_total",
	"cradle_monitor_processes", "go_goroutines", "go_memstats_heap_alloc_bytes",
	"process_resident_memory_bytes", "process_open_fds",
}

func TestMetricsAfterAPodRan(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	extra := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/extra", "x")}, testkit.Gzip)
	if _, err := reg.Push("it/base:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base)); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("it/more:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base, extra)); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	d := newDaemonFiles(t, daemonOpts{extraConfig: fmt.Sprintf("[metrics]\naddress = %q\n", addr)})
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	url := "http://" + addr + "/metrics"

	// Two pulls sharing a layer, and one of a tag that does not exist.
	for _, ref := range []string{reg.Ref("it/base:1"), reg.Ref("it/more:1")} {
		if _, err := d.Images.PullImage(ctx, spec(ref), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Images.PullImage(ctx, spec(reg.Ref("it/base:nope")), nil, nil); err == nil {
		t.Fatal("pulled a tag that does not exist")
	}
	pod := podConfig("metrics", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = t.TempDir()
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	image := reg.Ref("it/base:1")
	sleeper, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("sleeper", image, "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"), pod)
	if err != nil {
		t.Fatal(err)
	}
	done, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("done", image, "true"), pod)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sleeper, done} {
		if err := d.Runtime.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, d, sleeper, runtimeapi.ContainerState_CONTAINER_RUNNING)
	waitState(t, d, done, runtimeapi.ContainerState_CONTAINER_EXITED)

	// The exited container's conmon exits, and its exit is counted, just
	// after ContainerStatus shows the exit.
	var fams map[string]*dto.MetricFamily
	eventually(t, 10*time.Second, "the exit to be counted and its conmon gone", func() bool {
		fams = scrapeMetrics(t, http.DefaultClient, url)
		m, _ := metricValue(fams, "cradle_monitor_processes")
		e, _ := metricValue(fams, "cradle_container_exits_total", "reason", "Completed")
		return m == 1 && e == 1
	})
	for _, name := range metricFamilies {
		if fams[name] == nil {
			t.Errorf("family %s is missing", name)
		}
	}
	type want struct {
		name   string
		labels []string
		ok     func(float64) bool
		what   string
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	exactly := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	checks := []want{
		{"cradle_operations_total", []string{"operation", "RunPodSandbox", "code", "OK"}, exactly(1), "1"},
		{"cradle_operations_total", []string{"operation", "PullImage", "code", "OK"}, exactly(2), "2"},
		{"cradle_operations_total", []string{"operation", "PullImage", "code", "NotFound"}, exactly(1), "1"},
		{"cradle_operation_duration_seconds", []string{"operation", "StartContainer"}, exactly(2), "2 observations"},
		{"cradle_image_pulls_total", []string{"result", "success"}, exactly(2), "2"},
		{"cradle_image_pulls_total", []string{"result", "failure"}, exactly(1), "1"},
		{"cradle_image_pull_bytes_total", nil, atLeast(100_000), "≥ 100 kB (busybox)"},
		{"cradle_image_pull_duration_seconds", nil, exactly(3), "3 observations"},
		{"cradle_image_layers_reused_total", nil, exactly(1), "1 (the shared busybox layer)"},
		{"cradle_pods", []string{"state", "ready"}, exactly(1), "1"},
		{"cradle_pods", []string{"state", "notready"}, exactly(0), "0"},
		{"cradle_containers", []string{"state", "running"}, exactly(1), "1"},
		{"cradle_containers", []string{"state", "exited"}, exactly(1), "1"},
		{"cradle_container_starts_total", []string{"handler", "runc"}, exactly(2), "2"},
		{"cradle_container_exits_total", []string{"reason", "Completed"}, exactly(1), "1"},
		{"cradle_container_oom_kills_total", nil, exactly(0), "0"},
		{"cradle_pod_start_duration_seconds", nil, exactly(1), "1 observation"},
		{"cradle_monitor_processes", nil, exactly(1), "1 (the sleeper's conmon)"},
		{"cradle_events_dropped_total", nil, exactly(0), "0"},
	}
	check := func(fams map[string]*dto.MetricFamily, checks []want) {
		t.Helper()
		for _, c := range checks {
			v, ok := metricValue(fams, c.name, c.labels...)
			if !ok || !c.ok(v) {
				t.Errorf("%s%v = %v (present: %v), want %s", c.name, c.labels, v, ok, c.what)
			}
		}
	}
	check(fams, checks)

	// A restart reconciles the pod and both containers in the background.
	d.stop()
	d.start()
	eventually(t, 30*time.Second, "recovery to be counted", func() bool {
		fams = scrapeMetrics(t, http.DefaultClient, url)
		p, _ := metricValue(fams, "cradle_recovered_objects_total", "kind", "pod", "result", "ok")
		c, _ := metricValue(fams, "cradle_recovered_objects_total", "kind", "container", "result", "ok")
		return p == 1 && c == 1 // the exited container needs no reconciliation
	})
	check(fams, []want{
		{"cradle_recovered_objects_total", []string{"kind", "container", "result", "failed"}, exactly(0), "0"},
		{"cradle_pods", []string{"state", "ready"}, exactly(1), "1"},
		{"cradle_monitor_processes", nil, exactly(1), "1 (re-armed)"},
	})
}

// With tls_cert and tls_key, /metrics is HTTPS with that certificate.
func TestMetricsOverTLS(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	cert, key, roots := testkit.ServerCertFiles(t, dir)
	addr := freePort(t)
	d := startDaemon(t, daemonOpts{extraConfig: fmt.Sprintf("[metrics]\naddress = %q\ntls_cert = %q\ntls_key = %q\n", addr, cert, key)})
	if _, err := d.Runtime.Version(context.Background(), "v1"); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	fams := scrapeMetrics(t, client, "https://"+addr+"/metrics")
	if v, ok := metricValue(fams, "cradle_operations_total", "operation", "Version", "code", "OK"); !ok || v < 1 {
		t.Errorf("Version calls over TLS scrape = %v (present %v)", v, ok)
	}
	// A client that does not trust the certificate is refused.
	untrusted := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if _, err := untrusted.Get("https://" + addr + "/metrics"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("an untrusting client got: %v", err)
	}
}
