package cni

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Result is what the plugin chain set up for a pod. It marshals to JSON
// (netip types are text), so the sandbox record can keep it.
type Result struct {
	CNIVersion string      `json:"cniVersion"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	IPs        []IP        `json:"ips,omitempty"`
	Routes     []Route     `json:"routes,omitempty"`
	DNS        DNS         `json:"dns,omitzero"`
}

// Interface is a link a plugin created; Sandbox is the netns path for links
// inside the pod, empty for host-side links (bridge, veth peer).
type Interface struct {
	Name    string `json:"name"`
	MAC     string `json:"mac,omitempty"`
	Sandbox string `json:"sandbox,omitempty"`
}

// IP is an address with its prefix; Interface names the link it is on, when
// the plugin said.
type IP struct {
	Interface string       `json:"interface,omitempty"`
	Address   netip.Prefix `json:"address"`
	Gateway   netip.Addr   `json:"gateway,omitzero"`
}

// Route is a route the plugins installed in the pod; an invalid GW means the
// default next hop.
type Route struct {
	Dst netip.Prefix `json:"dst"`
	GW  netip.Addr   `json:"gw,omitzero"`
}

// PodIPs are the pod's addresses: those on links inside the sandbox, or
// without a named link, IPv4 before IPv6 (the first is the primary pod IP
// kubelet reports), each family in plugin order.
func (r *Result) PodIPs() []netip.Addr {
	inSandbox := map[string]bool{}
	for _, i := range r.Interfaces {
		inSandbox[i.Name] = i.Sandbox != ""
	}
	var out []netip.Addr
	for _, ip := range r.IPs {
		if ip.Interface == "" || inSandbox[ip.Interface] {
			out = append(out, ip.Address.Addr())
		}
	}
	slices.SortStableFunc(out, func(a, b netip.Addr) int {
		return cmp.Compare(family(a), family(b))
	})
	return out
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// convert turns whatever version a plugin answered in into a Result.
func convert(res types.Result) (*Result, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	out := &Result{CNIVersion: r.CNIVersion}
	for _, i := range r.Interfaces {
		out.Interfaces = append(out.Interfaces, Interface{Name: i.Name, MAC: i.Mac, Sandbox: i.Sandbox})
	}
	for _, ip := range r.IPs {
		p, err := prefix(ip.Address)
		if err != nil {
			return nil, fmt.Errorf("CNI result address %v: %w", ip.Address, err)
		}
		x := IP{Address: p, Gateway: addr(ip.Gateway)}
		if ip.Interface != nil {
			idx := *ip.Interface
			if idx < 0 || idx >= len(r.Interfaces) {
				return nil, fmt.Errorf("CNI result address %v names interface %d of %d", ip.Address, idx, len(r.Interfaces))
			}
			x.Interface = r.Interfaces[idx].Name
		}
		out.IPs = append(out.IPs, x)
	}
	for _, rt := range r.Routes {
		if rt == nil {
			continue
		}
		p, err := prefix(rt.Dst)
		if err != nil {
			return nil, fmt.Errorf("CNI result route %v: %w", rt.Dst, err)
		}
		out.Routes = append(out.Routes, Route{Dst: p, GW: addr(rt.GW)})
	}
	out.DNS = DNS{Servers: r.DNS.Nameservers, Searches: r.DNS.Search, Options: r.DNS.Options}
	return out, nil
}

func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

func prefix(n net.IPNet) (netip.Prefix, error) {
	a := addr(n.IP)
	ones, bits := n.Mask.Size()
	if !a.IsValid() || bits == 0 || (a.Is4() && bits != 32 && bits != 128) {
		return netip.Prefix{}, fmt.Errorf("not an IP prefix")
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), nil
}
