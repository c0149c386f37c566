package sandbox

import (
	"fmt"
	"net/netip"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// podName is the pod's unique key, in the shape kubelet-facing runtimes use
// (crictl and operators recognise it).
func podName(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("k8s_POD_%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

// validate checks everything Run can check before touching the host, so a
// bad request fails with InvalidArgument and leaves nothing behind.
func validate(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg == nil {
		return errdefs.InvalidArgument("pod sandbox config is missing")
	}
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return errdefs.InvalidArgument("pod sandbox metadata needs name, namespace and uid (got %q, %q, %q)",
			md.GetName(), md.GetNamespace(), md.GetUid())
	}
	for what, v := range map[string]string{"name": md.GetName(), "namespace": md.GetNamespace(), "uid": md.GetUid()} {
		// These would corrupt CNI_ARGS ("K=V;K=V") or the record's key.
		if strings.ContainsAny(v, ";=\x00\n") {
			return errdefs.InvalidArgument("pod sandbox %s %q contains ; = NUL or a newline", what, v)
		}
	}
	if err := validateNamespaces(cfg); err != nil {
		return err
	}
	if _, err := bandwidthOf(cfg); err != nil {
		return err
	}
	hostNet := isHost(cfg, netMode)
	if h := cfg.GetHostname(); h != "" && (len(h) > 64 || strings.ContainsAny(h, "\x00\n \t")) {
		return errdefs.InvalidArgument("pod hostname %q must be 1 to 64 bytes without whitespace or NUL", h)
	}
	if err := validateDNS(cfg.GetDnsConfig()); err != nil {
		return err
	}
	if !hostNet {
		for _, pm := range cfg.GetPortMappings() {
			if err := validatePort(pm); err != nil {
				return err
			}
		}
	}
	return validateSysctls(cfg.GetLinux().GetSysctls(), hostNet, isHost(cfg, ipcMode))
}

type nsKind int

const (
	netMode nsKind = iota
	ipcMode
	pidMode
)

func isHost(cfg *runtimeapi.PodSandboxConfig, k nsKind) bool {
	o := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch k {
	case netMode:
		return o.GetNetwork() == runtimeapi.NamespaceMode_NODE
	case ipcMode:
		return o.GetIpc() == runtimeapi.NamespaceMode_NODE
	}
	return o.GetPid() == runtimeapi.NamespaceMode_NODE
}

func validateNamespaces(cfg *runtimeapi.PodSandboxConfig) error {
	o := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	podOrNode := func(what string, m runtimeapi.NamespaceMode) error {
		if m != runtimeapi.NamespaceMode_POD && m != runtimeapi.NamespaceMode_NODE {
			return errdefs.InvalidArgument("pod %s namespace mode %s is not valid for a pod: use POD or NODE", what, m)
		}
		return nil
	}
	if err := podOrNode("network", o.GetNetwork()); err != nil {
		return err
	}
	if err := podOrNode("ipc", o.GetIpc()); err != nil {
		return err
	}
	switch o.GetPid() {
	case runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_POD:
	default:
		return errdefs.InvalidArgument("pod pid namespace mode %s is not valid for a pod: use CONTAINER, POD or NODE", o.GetPid())
	}
	if o.GetTargetId() != "" {
		return errdefs.InvalidArgument("pod namespace options name a target container %q; only containers may", o.GetTargetId())
	}
	return validateUserns(o)
}

func validateDNS(d *runtimeapi.DNSConfig) error {
	for _, s := range d.GetServers() {
		if _, err := netip.ParseAddr(s); err != nil {
			return errdefs.InvalidArgument("DNS server %q is not an IP address", s)
		}
	}
	for _, group := range [][]string{d.GetSearches(), d.GetOptions()} {
		for _, s := range group {
			if s == "" || strings.ContainsAny(s, " \t\n\x00#;") {
				return errdefs.InvalidArgument("DNS search or option %q is empty or has whitespace, NUL, # or ;", s)
			}
		}
	}
	return nil
}

func validatePort(pm *runtimeapi.PortMapping) error {
	if _, ok := runtimeapi.Protocol_name[int32(pm.GetProtocol())]; !ok {
		return errdefs.InvalidArgument("port mapping protocol %d is unknown", pm.GetProtocol())
	}
	if pm.GetContainerPort() < 1 || pm.GetContainerPort() > 65535 || pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
		return errdefs.InvalidArgument("port mapping %d→%d: ports must be 1-65535 (host port 0: not published)", pm.GetHostPort(), pm.GetContainerPort())
	}
	if ip := pm.GetHostIp(); ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return errdefs.InvalidArgument("port mapping host IP %q is not an IP address", ip)
		}
	}
	return nil
}

// validateSysctls accepts only namespaced sysctls, and only for namespaces
// the pod owns: a pod must not change the host through a sysctl.
func validateSysctls(s map[string]string, hostNet, hostIPC bool) error {
	for k, v := range s {
		if strings.ContainsAny(v, "\n\x00") {
			return errdefs.InvalidArgument("sysctl %s: value has a newline or NUL", k)
		}
		d := strings.ReplaceAll(k, "/", ".")
		switch {
		case strings.HasPrefix(d, "net."):
			if hostNet {
				return errdefs.InvalidArgument("sysctl %s would change the host: the pod uses the host network", k)
			}
		case d == "kernel.sem" || strings.HasPrefix(d, "kernel.shm") || strings.HasPrefix(d, "kernel.msg") || strings.HasPrefix(d, "fs.mqueue."):
			if hostIPC {
				return errdefs.InvalidArgument("sysctl %s would change the host: the pod uses the host IPC namespace", k)
			}
		default:
			return errdefs.InvalidArgument("sysctl %s is not namespaced; a pod may not set it", k)
		}
	}
	return nil
}
