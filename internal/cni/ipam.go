package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

// hostLocalDefaultDir is where the host-local IPAM plugin keeps its leases
// when the config names no dataDir.
const hostLocalDefaultDir = "/var/lib/cni/networks"

// Allocation is one address host-local has leased: a file named after the
// IP under <dataDir>/<network>, holding the container ID (our pod ID) and,
// since CNI plugins 1.0, the interface name on a second line.
type Allocation struct {
	Network     string
	Path        string
	IP          netip.Addr
	ContainerID string
	IfName      string
}

// HostLocalAllocations lists the leases host-local holds for the network
// chosen now and for every network a cached ADD used, for tools that look
// for leases no pod holds any more (cradle check). It reads files only.
func (n *Network) HostLocalAllocations() ([]Allocation, error) {
	var lists []*libcni.NetworkConfigList
	if c, err := n.current(); err == nil {
		lists = append(lists, c.list)
	}
	cached, err := n.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("read CNI cache: %w", err)
	}
	for _, a := range cached {
		if l, err := libcni.NetworkConfFromBytes(a.Config); err == nil {
			lists = append(lists, l)
		}
	}
	var dirs []string
	names := map[string]string{}
	for _, l := range lists {
		for _, p := range l.Plugins {
			var c struct {
				IPAM struct {
					Type    string `json:"type"`
					DataDir string `json:"dataDir"`
				} `json:"ipam"`
			}
			if json.Unmarshal(p.Bytes, &c) != nil || c.IPAM.Type != "host-local" {
				continue
			}
			base := c.IPAM.DataDir
			if base == "" {
				base = hostLocalDefaultDir
			}
			d := filepath.Join(base, l.Name)
			if !slices.Contains(dirs, d) {
				dirs = append(dirs, d)
				names[d] = l.Name
			}
		}
	}
	var out []Allocation
	for _, d := range dirs {
		allocs, err := readAllocations(d, names[d])
		if err != nil {
			return nil, err
		}
		out = append(out, allocs...)
	}
	return out, nil
}

func readAllocations(dir, network string) ([]Allocation, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host-local leases: %w", err)
	}
	var out []Allocation
	for _, e := range ents {
		ip, err := netip.ParseAddr(e.Name()) // skips "lock" and last_reserved_ip.N
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
		a := Allocation{Network: network, Path: path, IP: ip, ContainerID: strings.TrimSpace(lines[0])}
		if len(lines) > 1 {
			a.IfName = strings.TrimSpace(lines[1])
		}
		out = append(out, a)
	}
	return out, nil
}
