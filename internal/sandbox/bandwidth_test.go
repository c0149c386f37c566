package sandbox

import (
	"errors"
	"math"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestBandwidthFromAnnotations(t *testing.T) {
	cfg := func(ann map[string]string) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Annotations: ann}
	}
	if b, err := bandwidthOf(cfg(map[string]string{"other": "1M"})); b != nil || err != nil {
		t.Fatalf("no shaping annotations: %+v, %v", b, err)
	}
	b, err := bandwidthOf(cfg(map[string]string{ingressBandwidthAnnotation: "10M", egressBandwidthAnnotation: "1.5k"}))
	if err != nil {
		t.Fatal(err)
	}
	if b.IngressRate != 10_000_000 || b.EgressRate != 1500 || b.IngressBurst != math.MaxUint32 || b.EgressBurst != math.MaxUint32 {
		t.Fatalf("bandwidth %+v", b)
	}
	b, err = bandwidthOf(cfg(map[string]string{egressBandwidthAnnotation: "2Mi"}))
	if err != nil || b.IngressRate != 0 || b.IngressBurst != 0 || b.EgressRate != 2<<20 {
		t.Fatalf("egress only: %+v, %v", b, err)
	}
	for _, bad := range []string{"fast", "999", "2P", "-1M"} {
		_, err := bandwidthOf(cfg(map[string]string{ingressBandwidthAnnotation: bad}))
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: err %v, want InvalidArgument", bad, err)
		}
	}
}
