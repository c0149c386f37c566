package sandbox

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// PodResources are the pod-level resources kubelet reported with
// UpdatePodSandboxResources, as protojson of LinuxContainerResources. The
// record keeps them and the verbose status shows them; cradle does not act
// on them: kubelet has already resized the pod cgroup itself.
type PodResources struct {
	Overhead  json.RawMessage `json:"overhead,omitempty"`
	Resources json.RawMessage `json:"resources,omitempty"`
}

// UpdateResources records the pod-level resources kubelet set on the pod's
// cgroup. Values are checked as for a container, so garbage is refused
// (ErrInvalidArgument) instead of being reported back as the pod's truth.
func (m *Manager) UpdateResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error {
	p, err := m.lookup(id)
	if err != nil {
		return err
	}
	if overhead == nil && resources == nil {
		return errdefs.InvalidArgument("update pod %s: overhead or resources is required", id)
	}
	host := m.podHostFacts(overhead, resources)
	var out PodResources
	for _, r := range []struct {
		name string
		res  *runtimeapi.LinuxContainerResources
		dst  *json.RawMessage
	}{{"overhead", overhead, &out.Overhead}, {"resources", resources, &out.Resources}} {
		if r.res == nil {
			continue
		}
		if _, err := spec.Resources(r.res, host); err != nil {
			return errdefs.WithKind(errdefs.ErrInvalidArgument, fmt.Errorf("update pod %s: %s: %w", id, r.name, err))
		}
		b, err := protojson.Marshal(r.res)
		if err != nil {
			return fmt.Errorf("update pod %s: encode %s: %w", id, r.name, err)
		}
		*r.dst = b
	}
	if err := waitRecovered(ctx, p); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.removed {
		return errdefs.NotFound("pod sandbox %q not found", id)
	}
	prev := p.rec.Resources
	p.rec.Resources = &out
	if err := m.save(p); err != nil {
		p.rec.Resources = prev
		m.publish(p)
		return err
	}
	return nil
}

// podHostFacts are the node facts the values are checked against. Without
// node facts (a Manager built without them) only the values' form is
// checked: the page sizes and cgroup version asked for are taken as given.
func (m *Manager) podHostFacts(rs ...*runtimeapi.LinuxContainerResources) spec.HostFacts {
	if m.cfg.Node != nil {
		return m.cfg.Node.Host
	}
	host := spec.HostFacts{CgroupV2: true, Hugetlb: true, SwapAccounting: true}
	for _, r := range rs {
		for _, h := range r.GetHugepageLimits() {
			host.HugePageSizes = append(host.HugePageSizes, h.GetPageSize())
		}
	}
	return host
}
