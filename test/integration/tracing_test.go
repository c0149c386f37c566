package integration

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// kubeletTrace is the trace the test's calls claim to belong to, as
// kubelet's would with its tracing on.
const kubeletTrace = "5b8efff798038103d269b633813fc60c"

// sampledParent returns ctx carrying W3C trace context for a sampled
// client span n of kubeletTrace, and that span's ID.
func sampledParent(ctx context.Context, n int) (context.Context, string) {
	spanID := fmt.Sprintf("%016x", 0xc0ffee00+n)
	return metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+kubeletTrace+"-"+spanID+"-01"), spanID
}

func spanNames(spans []testkit.Span) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func TestTracingFollowsKubeletsSpans(t *testing.T) {
	needRoot(t)
	recv := testkit.NewOTLPReceiver(t)
	reg := testkit.NewRegistry(t)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	extra := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/extra", "x")}, testkit.Gzip)
	if _, err := reg.Push("it/traced:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base, extra)); err != nil {
		t.Fatal(err)
	}
	// Rate 0: only what the caller sampled is traced.
	d := newDaemonFiles(t, daemonOpts{extraConfig: fmt.Sprintf("[tracing]\nendpoint = %q\nsampling_rate_per_million = 0\n", recv.Addr)})
	withTestNetwork(t, d)
	d.env = []string{"OTEL_BSP_SCHEDULE_DELAY=50"} // export within the test's patience
	d.start()
	ctx := context.Background()
	image := reg.Ref("it/traced:1")

	pullCtx, pullParent := sampledParent(ctx, 1)
	if _, err := d.Images.PullImage(pullCtx, spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	// A pod sharing its PID namespace has an init: runc runs for it.
	pod := podConfig("traced", runtimeapi.NamespaceMode_POD)
	pod.LogDirectory = t.TempDir()
	runCtx, runParent := sampledParent(ctx, 2)
	podID, err := d.Runtime.RunPodSandbox(runCtx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	createCtx, createParent := sampledParent(ctx, 3)
	ctrID, err := d.Runtime.CreateContainer(createCtx, podID, containerConfig("c", image, "sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"), pod)
	if err != nil {
		t.Fatal(err)
	}
	startCtx, startParent := sampledParent(ctx, 4)
	if err := d.Runtime.StartContainer(startCtx, ctrID); err != nil {
		t.Fatal(err)
	}
	// Not sampled by the caller, nor by the rate.
	if _, err := d.Runtime.ListPodSandbox(ctx, nil); err != nil {
		t.Fatal(err)
	}
	stopCtx, stopParent := sampledParent(ctx, 5)
	if err := d.Runtime.StopPodSandbox(stopCtx, podID); err != nil {
		t.Fatal(err)
	}

	// rpc is the call's span, the child of the caller's span parent.
	rpc := func(spans []testkit.Span, name, parent string) (testkit.Span, bool) {
		for _, s := range spans {
			if s.Name == name && s.ParentSpanID == parent && s.TraceID == kubeletTrace {
				return s, true
			}
		}
		return testkit.Span{}, false
	}
	calls := []struct {
		name, parent string
		below        []string // span names that must be among the call's descendants
	}{
		{"runtime.v1.ImageService/PullImage", pullParent,
			[]string{"image.resolve", "image.layer.download", "image.layer.download", "image.layer.unpack", "image.layer.unpack"}},
		{"runtime.v1.RuntimeService/RunPodSandbox", runParent, []string{"cni.add", "oci.create", "conmon.start", "oci.start"}},
		{"runtime.v1.RuntimeService/CreateContainer", createParent, []string{"spec.generate", "oci.create", "conmon.start"}},
		{"runtime.v1.RuntimeService/StartContainer", startParent, []string{"oci.start"}},
		{"runtime.v1.RuntimeService/StopPodSandbox", stopParent, []string{"oci.kill", "cni.del"}},
	}
	var spans []testkit.Span
	complete := func() bool {
		spans = recv.Spans()
		for _, c := range calls {
			s, ok := rpc(spans, c.name, c.parent)
			if !ok {
				return false
			}
			below := spanNames(testkit.Descendants(spans, s.SpanID))
			for _, w := range c.below {
				i := slices.Index(below, w)
				if i < 0 {
					return false
				}
				below = slices.Delete(below, i, i+1) // counted once each
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	for !complete() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range calls {
		s, ok := rpc(spans, c.name, c.parent)
		if !ok {
			t.Errorf("no span %s whose parent is the caller's span %s", c.name, c.parent)
			continue
		}
		t.Logf("%s: %v", c.name, spanNames(testkit.Descendants(spans, s.SpanID)))
		if s.Attrs["rpc.grpc.status_code"] != "0" || s.Failed {
			t.Errorf("%s: status %q failed %v", c.name, s.Attrs["rpc.grpc.status_code"], s.Failed)
		}
	}
	if !complete() {
		t.Errorf("some calls lack the spans of their steps (want %+v)", calls)
	}
	for _, s := range spans {
		if s.Name == "runtime.v1.RuntimeService/ListPodSandbox" {
			t.Errorf("an unsampled call was traced: %+v", s)
		}
		if s.TraceID != kubeletTrace {
			t.Errorf("a span outside the callers' trace (rate 0 starts none): %+v", s)
		}
	}
}
