package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Resources converts CRI container resources to OCI ones under the same
// rules and validation as Build, so UpdateContainerResources cannot set
// what CreateContainer would refuse. Device rules are not included: they
// come from the container's devices, which an update does not change.
func Resources(r *runtimeapi.LinuxContainerResources, host HostFacts) (*specs.LinuxResources, error) {
	return buildResources(r, host)
}
