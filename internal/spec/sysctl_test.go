package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestSysctls(t *testing.T) {
	in, _ := testInput()
	in.Sandbox.Linux.Sysctls = map[string]string{
		"net.ipv4.ip_forward":            "1",
		"net/ipv4/tcp_syncookies":        "0",
		"net.ipv4.conf.eth0/1.rp_filter": "2",
		"kernel.shm_rmid_forced":         "1",
		"kernel.msgmax":                  "65536",
		"kernel.sem":                     "250 32000 100 128",
		"fs.mqueue.msg_max":              "20",
	}
	got := mustBuild(t, in).Linux.Sysctl
	want := map[string]string{
		"net.ipv4.ip_forward":            "1",
		"net.ipv4.tcp_syncookies":        "0",
		"net.ipv4.conf.eth0/1.rp_filter": "2",
		"kernel.shm_rmid_forced":         "1",
		"kernel.msgmax":                  "65536",
		"kernel.sem":                     "250 32000 100 128",
		"fs.mqueue.msg_max":              "20",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("sysctls (-want +got):\n%s", diff)
	}
}

func TestSysctlErrors(t *testing.T) {
	cases := []struct {
		name          string
		key           string
		hostNet, host bool // host network / host IPC
		substr        string
	}{
		{"node-wide", "kernel.pid_max", false, false, "not namespaced"},
		{"node-wide vm", "vm.swappiness", false, false, "not namespaced"},
		{"sem prefix is not enough", "kernel.semx", false, false, "not namespaced"},
		{"empty", "", false, false, "empty sysctl"},
		{"net on host network", "net.ipv4.ip_forward", true, false, "host network"},
		{"ipc in host ipc", "kernel.shmmax", false, true, "host IPC"},
		{"mqueue in host ipc", "fs.mqueue.queues_max", false, true, "host IPC"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := buildSysctls(map[string]string{c.key: "1"}, namespaces{hostNet: c.hostNet, hostIPC: c.host}, &Node{})
			wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
		})
	}
	_, err := buildSysctls(map[string]string{"net.core.somaxconn": "1", "net/core/somaxconn": "2"}, namespaces{}, &Node{})
	wantErr(t, err, errdefs.ErrInvalidArgument, "given twice")

	// Through Build, with the namespace modes taken from the configs.
	in, _ := testInput()
	in.Sandbox.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	secCtx(&in).NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	in.Sandbox.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	_, err = Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "host network")
}

func TestUnprivilegedPortAndICMPDefaults(t *testing.T) {
	node := &Node{UnprivilegedPorts: true, UnprivilegedICMP: true}
	got, err := buildSysctls(nil, namespaces{}, node)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{sysctlUnprivilegedPorts: "0", sysctlPingGroupRange: "0 2147483647"}
	if !cmp.Equal(got, want) {
		t.Fatalf("defaults = %v, want %v", got, want)
	}
	// The pod's own value wins.
	got, _ = buildSysctls(map[string]string{sysctlUnprivilegedPorts: "1024"}, namespaces{}, node)
	if got[sysctlUnprivilegedPorts] != "1024" {
		t.Fatalf("pod value overridden: %v", got)
	}
	// Never on the host network: that would change the node.
	got, _ = buildSysctls(nil, namespaces{hostNet: true}, node)
	if got != nil {
		t.Fatalf("host network got %v", got)
	}
	// Off by default.
	if got, _ := buildSysctls(nil, namespaces{}, &Node{}); got != nil {
		t.Fatalf("no defaults configured, got %v", got)
	}
}

func TestDotted(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":              "net.ipv4.ip_forward",
		"net/ipv4/ip_forward":              "net.ipv4.ip_forward",
		"net/ipv4/conf/eth0.100/rp_filter": "net.ipv4.conf.eth0/100.rp_filter",
		"kernel":                           "kernel",
	} {
		if got := dotted(in); got != want {
			t.Errorf("dotted(%q) = %q, want %q", in, got, want)
		}
	}
}
