package spec

import (
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Sysctls a pod may set, by the namespace that makes them per-pod: the same
// classification kubelet uses. Anything else would change the whole node.
var (
	ipcSysctls        = map[string]bool{"kernel.sem": true}
	ipcSysctlPrefixes = []string{"kernel.shm", "kernel.msg", "fs.mqueue."}
)

const (
	sysctlUnprivilegedPorts = "net.ipv4.ip_unprivileged_port_start"
	sysctlPingGroupRange    = "net.ipv4.ping_group_range"
)

// buildSysctls validates the pod's sysctls against its namespaces. They go
// into every container's spec: the runtime writes them inside the pod's
// shared namespaces, where writing the same value again is harmless.
func buildSysctls(in map[string]string, ns namespaces, node *Node) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range in {
		name := dotted(k)
		switch {
		case name == "":
			return nil, errdefs.InvalidArgument("empty sysctl name")
		case strings.HasPrefix(name, "net."):
			if ns.hostNet {
				return nil, errdefs.InvalidArgument("sysctl %q is not allowed in a pod on the host network", k)
			}
		case isIPCSysctl(name):
			if ns.hostIPC {
				return nil, errdefs.InvalidArgument("sysctl %q is not allowed in a pod in the host IPC namespace", k)
			}
		default:
			return nil, errdefs.InvalidArgument("sysctl %q is not namespaced: it would change the whole node", k)
		}
		if _, dup := out[name]; dup {
			return nil, errdefs.InvalidArgument("sysctl %q is given twice, in dotted and slash form", name)
		}
		out[name] = v
	}
	if !ns.hostNet {
		if _, set := out[sysctlUnprivilegedPorts]; node.UnprivilegedPorts && !set {
			out[sysctlUnprivilegedPorts] = "0"
		}
		if _, set := out[sysctlPingGroupRange]; node.UnprivilegedICMP && !set {
			out[sysctlPingGroupRange] = "0 2147483647"
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func isIPCSysctl(name string) bool {
	if ipcSysctls[name] {
		return true
	}
	for _, p := range ipcSysctlPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// dotted converts the slash form ("net/ipv4/ip_forward") to the dotted form
// runtimes check. When the first separator is a dot the name is already
// dotted and slashes belong to a component ("net.ipv4.conf.eth0/1.rp_filter").
func dotted(name string) string {
	i := strings.IndexAny(name, "./")
	if i < 0 || name[i] == '.' {
		return name
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		}
		return r
	}, name)
}
