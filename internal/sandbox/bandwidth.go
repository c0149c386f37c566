package sandbox

import (
	"math"

	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// The pod annotations that ask for traffic shaping. kubelet copies pod
// annotations into the sandbox config and leaves shaping to the runtime's
// CNI "bandwidth" capability.
const (
	ingressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	egressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// kubelet's bounds for these annotations: below 1 kbit/s the shaper cannot
// work, above 1 Pbit/s the value is a mistake.
var (
	minBandwidth = resource.MustParse("1k")
	maxBandwidth = resource.MustParse("1P")
)

// bandwidthOf reads the shaping annotations into the CNI capability; nil
// when the pod asks for none. Rates are bits per second. Kubernetes has no
// burst setting, so bursts are the largest the plugin takes: a smaller one
// would drop traffic the rate allows.
func bandwidthOf(cfg *runtimeapi.PodSandboxConfig) (*cni.Bandwidth, error) {
	ann := cfg.GetAnnotations()
	ingress, err := bandwidthAnnotation(ann, ingressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	egress, err := bandwidthAnnotation(ann, egressBandwidthAnnotation)
	if err != nil {
		return nil, err
	}
	if ingress == 0 && egress == 0 {
		return nil, nil
	}
	b := &cni.Bandwidth{}
	if ingress > 0 {
		b.IngressRate, b.IngressBurst = ingress, math.MaxUint32
	}
	if egress > 0 {
		b.EgressRate, b.EgressBurst = egress, math.MaxUint32
	}
	return b, nil
}

func bandwidthAnnotation(ann map[string]string, key string) (uint64, error) {
	v, ok := ann[key]
	if !ok {
		return 0, nil
	}
	q, err := resource.ParseQuantity(v)
	if err != nil {
		return 0, errdefs.InvalidArgument("annotation %s=%q: not a quantity: %v", key, v, err)
	}
	if q.Cmp(minBandwidth) < 0 || q.Cmp(maxBandwidth) > 0 {
		return 0, errdefs.InvalidArgument("annotation %s=%q: must be between %s and %s bits per second",
			key, v, minBandwidth.String(), maxBandwidth.String())
	}
	return uint64(q.Value()), nil
}
