package spec

import "slices"

// RuntimeFeatures are what one RuntimeClass handler can honour: the kernel's
// facts combined with what its OCI runtime says it knows (`<runtime>
// features`). They are detected once per handler at daemon start and are
// what Status reports to kubelet, so a container is only ever refused for a
// feature that Status already said was missing.
type RuntimeFeatures struct {
	// RecursiveReadOnly says mounts can be made read-only with every
	// sub-mount ("rro"): the kernel has mount_setattr (5.12+) and the runtime
	// lists the "rro" mount option.
	RecursiveReadOnly bool
}

// NewRuntimeFeatures combines the host's facts with the mount options the
// handler's runtime reports. A runtime that reports nothing (no `features`
// command, or it failed) supports nothing optional.
func NewRuntimeFeatures(host HostFacts, runtimeMountOptions []string) RuntimeFeatures {
	return RuntimeFeatures{
		RecursiveReadOnly: host.RecursiveReadOnly && slices.Contains(runtimeMountOptions, "rro"),
	}
}

// runtimeFeatures are the features of the handler that runs the container;
// an unknown handler has none.
func (n *Node) runtimeFeatures(handler string) RuntimeFeatures {
	if n.FeaturesOf != nil {
		return n.FeaturesOf(handler)
	}
	return n.Runtimes[handler]
}
