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
	// Capabilities are those the runtime knows; a container never gets one
	// outside them (a privileged one gets the host's set within them). Nil
	// puts no bound (an undetected handler, tests).
	Capabilities []string
}

// NewRuntimeFeatures combines the host's facts with the mount options and
// capabilities the handler's runtime reports. A runtime that reports
// nothing (no `features` command, or it failed) supports nothing optional
// and is given only the capabilities every OCI runtime knows.
func NewRuntimeFeatures(host HostFacts, runtimeMountOptions, runtimeCaps []string) RuntimeFeatures {
	if runtimeCaps == nil {
		runtimeCaps = LegacyCapabilities()
	}
	return RuntimeFeatures{
		RecursiveReadOnly: host.RecursiveReadOnly && slices.Contains(runtimeMountOptions, "rro"),
		Capabilities:      runtimeCaps,
	}
}

// LegacyCapabilities are the capabilities up to CAP_AUDIT_READ (Linux
// 3.16), which every OCI runtime knows. Newer ones (CAP_PERFMON, CAP_BPF,
// CAP_CHECKPOINT_RESTORE) make an older runtime refuse the container
// (gVisor's 2022 build: "unknown capability").
func LegacyCapabilities() []string {
	return slices.Clone(capNames[:capIndex["CAP_AUDIT_READ"]+1])
}

// capabilitiesFor is the host's capability set within what the handler's
// runtime knows.
func (n *Node) capabilitiesFor(handler string) []string {
	known := n.runtimeFeatures(handler).Capabilities
	if known == nil {
		return n.Host.Capabilities
	}
	var out []string
	for _, c := range n.Host.Capabilities {
		if slices.Contains(known, c) {
			out = append(out, c)
		}
	}
	return out
}

// runtimeFeatures are the features of the handler that runs the container;
// an unknown handler has none.
func (n *Node) runtimeFeatures(handler string) RuntimeFeatures {
	if n.FeaturesOf != nil {
		return n.FeaturesOf(handler)
	}
	return n.Runtimes[handler]
}
