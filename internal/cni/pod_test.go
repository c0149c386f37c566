package cni

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestSetupValidation(t *testing.T) {
	e := newEnv(t)
	ok := PodNet{ID: "abc123", Name: "web", Namespace: "default", NetnsPath: "/run/x/ns/net"}
	cases := map[string]func(p *PodNet){
		"empty ID":          func(p *PodNet) { p.ID = "" },
		"ID with slash":     func(p *PodNet) { p.ID = "../x" },
		"no name":           func(p *PodNet) { p.Name = "" },
		"no namespace":      func(p *PodNet) { p.Namespace = "" },
		"semicolon in name": func(p *PodNet) { p.Name = "a;K8S_POD_NAME=b" },
		"equals in uid":     func(p *PodNet) { p.UID = "a=b" },
		"relative netns":    func(p *PodNet) { p.NetnsPath = "ns/net" },
		"bad protocol": func(p *PodNet) {
			p.PortMappings = []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "icmp"}}
		},
		"container port 0": func(p *PodNet) { p.PortMappings = []PortMapping{{HostPort: 80}} },
		"host port too big": func(p *PodNet) {
			p.PortMappings = []PortMapping{{HostPort: 70000, ContainerPort: 80}}
		},
		"bad host IP": func(p *PodNet) {
			p.PortMappings = []PortMapping{{HostPort: 80, ContainerPort: 80, HostIP: "localhost"}}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			p := ok
			mutate(&p)
			_, err := e.net.Setup(context.Background(), p)
			wantKind(t, err, errdefs.ErrInvalidArgument)
		})
	}
	// Valid arguments, but the netns path is not a namespace.
	plain := filepath.Join(t.TempDir(), "net")
	os.WriteFile(plain, nil, 0o600)
	p := ok
	p.NetnsPath = plain
	_, err := e.net.Setup(context.Background(), p)
	wantKind(t, err, errdefs.ErrFailedPrecondition)

	wantKind(t, e.net.Teardown(context.Background(), PodNet{ID: "bad/id"}), errdefs.ErrInvalidArgument)
}

func TestRuntimeConf(t *testing.T) {
	n := &Network{ifName: IfName}
	rt := n.runtimeConf(PodNet{
		ID: "sb1", Name: "web", Namespace: "prod", UID: "u-1",
		PortMappings: []PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "TCP", HostIP: "127.0.0.1"},
			{HostPort: 0, ContainerPort: 9090}, // not published
			{HostPort: 5353, ContainerPort: 53, Protocol: "UDP"},
		},
		Bandwidth: &Bandwidth{IngressRate: 1e6, IngressBurst: 2e6},
	}, "/ns")
	if rt.ContainerID != "sb1" || rt.NetNS != "/ns" || rt.IfName != "eth0" {
		t.Fatalf("rt = %+v", rt)
	}
	wantArgs := [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "prod"}, {"K8S_POD_NAME", "web"},
		{"K8S_POD_INFRA_CONTAINER_ID", "sb1"}, {"K8S_POD_UID", "u-1"}}
	if !slices.Equal(rt.Args, wantArgs) {
		t.Fatalf("Args = %v", rt.Args)
	}
	b, _ := json.Marshal(rt.CapabilityArgs)
	want := `{"bandwidth":{"ingressRate":1000000,"ingressBurst":2000000,"egressRate":0,"egressBurst":0},` +
		`"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"},` +
		`{"hostPort":5353,"containerPort":53,"protocol":"udp"}]}`
	if string(b) != want {
		t.Fatalf("capabilities\n got %s\nwant %s", b, want)
	}
	if _, ok := n.runtimeConf(PodNet{ID: "x"}, "").CapabilityArgs["portMappings"]; ok {
		t.Fatal("portMappings passed without mappings")
	}
}

func TestConvertResult(t *testing.T) {
	zero, one := 0, 1
	res := &types100.Result{
		CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{
			{Name: "cni0", Mac: "aa:bb:cc:dd:ee:00"},
			{Name: "eth0", Mac: "aa:bb:cc:dd:ee:01", Sandbox: "/run/ns/net"},
		},
		IPs: []*types100.IPConfig{
			{Interface: &one, Address: mustIPNet(t, "fd00::5/64"), Gateway: mustIP("fd00::1")},
			{Interface: &zero, Address: mustIPNet(t, "10.0.0.1/24")},
			{Interface: &one, Address: mustIPNet(t, "10.0.0.5/24"), Gateway: mustIP("10.0.0.1")},
		},
		Routes: []*types.Route{{Dst: mustIPNet(t, "0.0.0.0/0"), GW: mustIP("10.0.0.1")}},
	}
	r, err := convert(res)
	if err != nil {
		t.Fatal(err)
	}
	got := r.PodIPs()
	want := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}
	if !slices.Equal(got, want) {
		t.Fatalf("PodIPs = %v, want %v (v4 first, host-side bridge address excluded)", got, want)
	}
	if r.IPs[2].Interface != "eth0" || r.IPs[2].Gateway != netip.MustParseAddr("10.0.0.1") || r.IPs[2].Address.Bits() != 24 {
		t.Fatalf("IP = %+v", r.IPs[2])
	}
	if len(r.Routes) != 1 || r.Routes[0].Dst != netip.MustParsePrefix("0.0.0.0/0") {
		t.Fatalf("Routes = %+v", r.Routes)
	}
	// The record round-trips through JSON.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back.PodIPs(), want) {
		t.Fatalf("round trip: %v %s", err, b)
	}

	bad := 7
	res.IPs[0].Interface = &bad
	if _, err := convert(res); err == nil || !strings.Contains(err.Error(), "interface 7") {
		t.Fatalf("out-of-range interface index: %v", err)
	}
}

// mustIPNet parses an address with prefix length, keeping the address.
func mustIPNet(t *testing.T, s string) net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return *n
}

func mustIP(s string) net.IP { return net.ParseIP(s) }
