package cni

import (
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// PodNet is what the plugins learn about a pod.
type PodNet struct {
	ID        string // sandbox ID: CNI container ID and K8S_POD_INFRA_CONTAINER_ID
	Name      string // K8S_POD_NAME
	Namespace string // K8S_POD_NAMESPACE
	UID       string // K8S_POD_UID
	// NetnsPath is the pinned network namespace. Required by Setup;
	// Teardown passes it on only while it still is a namespace.
	NetnsPath    string
	PortMappings []PortMapping // hostPort 0 entries publish nothing and are dropped
	Bandwidth    *Bandwidth    // the "bandwidth" capability, when set
	DNS          *DNS          // the "dns" capability, when set
}

// PortMapping publishes a pod port on the host (the "portMappings"
// capability, served by the portmap plugin).
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	Protocol      string // tcp (default), udp or sctp; any case
	HostIP        string // "" binds all host addresses
}

// Bandwidth limits a pod's traffic (the "bandwidth" capability); rates in
// bits per second, bursts in bits.
type Bandwidth struct {
	IngressRate, IngressBurst uint64
	EgressRate, EgressBurst   uint64
}

// DNS is the pod's resolver configuration (the "dns" capability).
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// The JSON shapes the CNI conventions define for these capabilities.
type portMapArg struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

type bandwidthArg struct {
	IngressRate  uint64 `json:"ingressRate"`
	IngressBurst uint64 `json:"ingressBurst"`
	EgressRate   uint64 `json:"egressRate"`
	EgressBurst  uint64 `json:"egressBurst"`
}

type dnsArg struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

func checkID(id string) error {
	if err := utils.ValidateContainerID(id); err != nil {
		return errdefs.InvalidArgument("pod network: sandbox ID %q: %s", id, err.Msg)
	}
	return nil
}

// validate checks what Setup needs; Teardown needs only the ID.
func (p PodNet) validate() error {
	if err := checkID(p.ID); err != nil {
		return err
	}
	if p.Name == "" || p.Namespace == "" {
		return errdefs.InvalidArgument("pod network %s: pod name and namespace are required", p.ID)
	}
	// CNI_ARGS is "K=V;K=V": these characters would split or corrupt it.
	for k, v := range map[string]string{"name": p.Name, "namespace": p.Namespace, "uid": p.UID} {
		if strings.ContainsAny(v, ";=\x00") {
			return errdefs.InvalidArgument("pod network %s: pod %s %q contains ';', '=' or NUL", p.ID, k, v)
		}
	}
	if !filepath.IsAbs(p.NetnsPath) {
		return errdefs.InvalidArgument("pod network %s: netns path %q is not absolute", p.ID, p.NetnsPath)
	}
	for _, m := range p.PortMappings {
		if _, err := m.arg(); err != nil {
			return errdefs.InvalidArgument("pod network %s: %v", p.ID, err)
		}
	}
	return nil
}

func (m PortMapping) arg() (portMapArg, error) {
	proto := strings.ToLower(m.Protocol)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return portMapArg{}, errdefs.InvalidArgument("port mapping %+v: protocol must be tcp, udp or sctp", m)
	}
	if m.ContainerPort < 1 || m.ContainerPort > 65535 || m.HostPort < 0 || m.HostPort > 65535 {
		return portMapArg{}, errdefs.InvalidArgument("port mapping %+v: ports must be 1-65535 (host port 0: not published)", m)
	}
	if m.HostIP != "" {
		if _, err := netip.ParseAddr(m.HostIP); err != nil {
			return portMapArg{}, errdefs.InvalidArgument("port mapping %+v: host IP: %v", m, err)
		}
	}
	return portMapArg{HostPort: m.HostPort, ContainerPort: m.ContainerPort, Protocol: proto, HostIP: m.HostIP}, nil
}

// runtimeConf is one plugin invocation's arguments. libcni hands each
// capability only to plugins that declare it, and keeps all of this in its
// cache so a later DEL repeats it exactly.
func (n *Network) runtimeConf(p PodNet, netnsPath string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       netnsPath,
		IfName:      n.ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	var ports []portMapArg
	for _, m := range p.PortMappings {
		if a, err := m.arg(); err == nil && a.HostPort != 0 {
			ports = append(ports, a)
		}
	}
	if len(ports) > 0 {
		rt.CapabilityArgs["portMappings"] = ports
	}
	if b := p.Bandwidth; b != nil {
		rt.CapabilityArgs["bandwidth"] = bandwidthArg{b.IngressRate, b.IngressBurst, b.EgressRate, b.EgressBurst}
	}
	if d := p.DNS; d != nil {
		rt.CapabilityArgs["dns"] = dnsArg{d.Servers, d.Searches, d.Options}
	}
	return rt
}
