package cri

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// UpdateContainerResources applies new cgroup limits to a created or
// running container at once and records them, so ContainerStatus reports
// them, also after a restart. A container that has exited answers
// FailedPrecondition: there is no cgroup left to change.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if err := s.containersEnabled("UpdateContainerResources"); err != nil {
		return nil, err
	}
	if req.ContainerId == "" {
		return nil, errdefs.InvalidArgument("UpdateContainerResources: container_id is required")
	}
	if req.Linux == nil {
		return nil, errdefs.InvalidArgument("UpdateContainerResources: linux resources are required on this Linux node")
	}
	if err := s.containers.UpdateResources(ctx, req.ContainerId, req.Linux); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// UpdatePodSandboxResources records the pod-level resources kubelet has
// already set on the pod cgroup, for the verbose PodSandboxStatus. It is
// best effort for kubelet; bad values are still refused.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "UpdatePodSandboxResources: pods are not enabled in this daemon")
	}
	if req.PodSandboxId == "" {
		return nil, errdefs.InvalidArgument("UpdatePodSandboxResources: pod_sandbox_id is required")
	}
	if err := s.pods.UpdateResources(ctx, req.PodSandboxId, req.Overhead, req.Resources); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR(s) from kubelet. cradle's
// CNI config names its own ranges, so the CIDR is only kept (under root, so
// it survives a restart), logged and shown in the verbose Status. An empty
// CIDR changes nothing.
func (s *Server) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
	}
	cidrs, err := parsePodCIDRs(cidr)
	if err != nil {
		return nil, err
	}
	changed, err := s.runtimeConfig.setPodCIDR(s.config().Root, cidrs)
	if err != nil {
		return nil, err
	}
	if changed {
		s.log.Info("pod CIDR from kubelet", "podCIDR", cidrs)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// parsePodCIDRs reads kubelet's pod CIDR: one prefix, or an IPv4 and an
// IPv6 one joined by a comma on dual-stack nodes. Returns them normalised.
func parsePodCIDRs(s string) (string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return "", errdefs.InvalidArgument("UpdateRuntimeConfig: pod CIDR %q: %q is not a CIDR like 10.244.0.0/24", s, part)
		}
		out = append(out, p.Masked().String())
	}
	return strings.Join(out, ","), nil
}

// runtimeConfigFile holds what UpdateRuntimeConfig pushed, under root.
const runtimeConfigFile = "runtime-config.json"

// runtimeConfigStore keeps kubelet's runtime config; it is read from disk on
// first use, so wiring needs nothing.
type runtimeConfigStore struct {
	mu     sync.Mutex
	loaded bool
	state  struct {
		PodCIDR string `json:"podCIDR,omitempty"`
	}
}

func (r *runtimeConfigStore) loadLocked(root string) {
	if r.loaded {
		return
	}
	r.loaded = true
	b, err := os.ReadFile(filepath.Join(root, runtimeConfigFile))
	if err == nil {
		// A damaged file only loses what kubelet sends again at its
		// next start.
		_ = json.Unmarshal(b, &r.state)
	}
}

// podCIDR is the last pod CIDR kubelet sent, "" if none.
func (r *runtimeConfigStore) podCIDR(root string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked(root)
	return r.state.PodCIDR
}

func (r *runtimeConfigStore) setPodCIDR(root, cidr string) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked(root)
	if r.state.PodCIDR == cidr {
		return false, nil
	}
	next := r.state
	next.PodCIDR = cidr
	b, err := json.Marshal(next)
	if err != nil {
		return false, err
	}
	if err := writeAtomic(filepath.Join(root, runtimeConfigFile), b); err != nil {
		return false, fmt.Errorf("UpdateRuntimeConfig: store pod CIDR: %w", err)
	}
	r.state = next
	return true, nil
}

// writeAtomic replaces path durably: temp file, fsync, rename, fsync dir.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
