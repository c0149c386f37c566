package check

import (
	"context"
	"fmt"

	"github.com/cradle-runtime/cradle/internal/cni"
)

// networkOrphans: CNI attachments cached for pods without a record, and
// host-local leases naming a pod without a record. A lease is only
// attributed by its network: the IPAM data dir of cradle's network is
// assumed to be cradle's alone.
func networkOrphans(inv *inventory) []Finding {
	var out []Finding
	network := inv.cfg.CNI
	for _, id := range inv.attached {
		if _, ok := inv.podByID[id]; ok {
			continue
		}
		out = append(out, Finding{Kind: "cni", Object: id, Problem: "orphan-attachment",
			Detail: "libcni has a cached ADD for a pod without a record", Action: "CNI DEL from the cached ADD",
			stage: stageNetwork, fix: func(ctx context.Context) error { return network.Teardown(ctx, cni.PodNet{ID: id}) }})
	}
	for _, a := range inv.allocations {
		if _, ok := inv.podByID[a.ContainerID]; ok {
			continue
		}
		path := a.Path
		out = append(out, Finding{Kind: "ip", Object: a.Network + "/" + a.IP.String(), Problem: "leaked",
			Detail: fmt.Sprintf("host-local lease %s names pod %s, which has no record", a.Path, a.ContainerID),
			Action: "remove the lease file", stage: stageLease, fix: func(context.Context) error { return removeFile(path) }})
	}
	return out
}
