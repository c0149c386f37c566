package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const (
	pod  = runtimeapi.NamespaceMode_POD
	ctr  = runtimeapi.NamespaceMode_CONTAINER
	node = runtimeapi.NamespaceMode_NODE
	tgt  = runtimeapi.NamespaceMode_TARGET
)

var testPaths = SandboxNamespaces{Network: "/ns/net", IPC: "/ns/ipc", UTS: "/ns/uts", PID: "/proc/7/ns/pid"}

// withModes sets the same network and IPC mode on pod and container, and
// the given PID modes.
func withModes(in *Input, netIPC, podPID, ctrPID runtimeapi.NamespaceMode, target string) {
	in.Sandbox.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Network: netIPC, Ipc: netIPC, Pid: podPID}
	secCtx(in).NamespaceOptions = &runtimeapi.NamespaceOption{Network: netIPC, Ipc: netIPC, Pid: ctrPID, TargetId: target}
}

func TestNamespaces(t *testing.T) {
	mnt := specs.LinuxNamespace{Type: specs.MountNamespace}
	net := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/ns/net"}
	ipc := specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "/ns/ipc"}
	uts := specs.LinuxNamespace{Type: specs.UTSNamespace, Path: "/ns/uts"}
	cases := []struct {
		name                   string
		netIPC, podPID, ctrPID runtimeapi.NamespaceMode
		target                 string
		want                   []specs.LinuxNamespace
		hostname               string
	}{
		{"own pid", pod, ctr, ctr, "", []specs.LinuxNamespace{{Type: specs.PIDNamespace}, net, ipc, uts, mnt}, "web-0"},
		{"pod pid", pod, pod, pod, "", []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/7/ns/pid"}, net, ipc, uts, mnt}, "web-0"},
		{"target pid", pod, ctr, tgt, "c0", []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/99/ns/pid"}, net, ipc, uts, mnt}, "web-0"},
		{"host pid", pod, node, node, "", []specs.LinuxNamespace{net, ipc, uts, mnt}, "web-0"},
		// Host network implies the host's UTS namespace, so no hostname.
		{"host network and ipc", node, ctr, ctr, "", []specs.LinuxNamespace{{Type: specs.PIDNamespace}, mnt}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _ := testInput()
			in.Namespaces = testPaths
			in.TargetPIDNamespace = "/proc/99/ns/pid"
			withModes(&in, c.netIPC, c.podPID, c.ctrPID, c.target)
			s := mustBuild(t, in)
			if diff := cmp.Diff(c.want, s.Linux.Namespaces); diff != "" {
				t.Fatalf("namespaces (-want +got):\n%s", diff)
			}
			if s.Hostname != c.hostname {
				t.Fatalf("hostname = %q, want %q", s.Hostname, c.hostname)
			}
		})
	}
}

func TestCgroupNamespaceOnV2(t *testing.T) {
	in, sys := testInput()
	sys.devices["/dev"] = nil
	in.Node.Host.CgroupV2 = true
	ns := mustBuild(t, in).Linux.Namespaces
	if last := ns[len(ns)-1]; last != (specs.LinuxNamespace{Type: specs.CgroupNamespace}) {
		t.Fatalf("cgroup v2 container lacks a cgroup namespace: %+v", ns)
	}
	in.Sandbox.Linux.SecurityContext.Privileged = true
	secCtx(&in).Privileged = true
	for _, n := range mustBuild(t, in).Linux.Namespaces {
		if n.Type == specs.CgroupNamespace {
			t.Fatal("privileged container got a private cgroup namespace")
		}
	}
}

func TestNamespaceErrors(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Input)
		kind   error
		substr string
	}{
		{"unknown network mode", func(in *Input) { secCtx(in).NamespaceOptions.Network = 7 }, errdefs.ErrInvalidArgument, "unknown network namespace mode 7"},
		{"unknown pod ipc mode", func(in *Input) { in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = 9 }, errdefs.ErrInvalidArgument, "unknown ipc namespace mode 9"},
		{"unknown pid mode", func(in *Input) { secCtx(in).NamespaceOptions.Pid = 5 }, errdefs.ErrInvalidArgument, "unknown pid namespace mode 5"},
		{"container network", func(in *Input) { withModes(in, ctr, ctr, ctr, "") }, errdefs.ErrInvalidArgument, "network namespace mode CONTAINER is not supported"},
		{"target ipc", func(in *Input) {
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = tgt
			secCtx(in).NamespaceOptions.Ipc = tgt
		}, errdefs.ErrInvalidArgument, "ipc namespace mode TARGET"},
		{"host network in a pod network", func(in *Input) { secCtx(in).NamespaceOptions.Network = node }, errdefs.ErrInvalidArgument, "conflicting network namespace options"},
		{"pod ipc in a host-ipc pod", func(in *Input) { in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = node }, errdefs.ErrInvalidArgument, "conflicting ipc namespace options"},
		{"pod pid in a pod without one", func(in *Input) { withModes(in, pod, ctr, pod, "") }, errdefs.ErrInvalidArgument, "conflicting pid namespace options"},
		{"host pid in a plain pod", func(in *Input) { withModes(in, pod, ctr, node, "") }, errdefs.ErrInvalidArgument, "conflicting pid namespace options"},
		{"own pid in a shared pod", func(in *Input) { withModes(in, pod, pod, ctr, "") }, errdefs.ErrInvalidArgument, "conflicting pid namespace options"},
		{"target in a shared pod", func(in *Input) { withModes(in, pod, pod, tgt, "c0") }, errdefs.ErrInvalidArgument, "conflicting pid namespace options"},
		{"pod pid mode target", func(in *Input) { withModes(in, pod, tgt, tgt, "c0") }, errdefs.ErrInvalidArgument, "sandbox pid namespace mode TARGET"},
		{"target without id", func(in *Input) { withModes(in, pod, ctr, tgt, "") }, errdefs.ErrInvalidArgument, "needs a target_id"},
		{"target without path", func(in *Input) { withModes(in, pod, ctr, tgt, "c0"); in.TargetPIDNamespace = "" }, errdefs.ErrFailedPrecondition, "target container c0"},
		{"no pod pid path", func(in *Input) { withModes(in, pod, pod, pod, ""); in.Namespaces.PID = "" }, errdefs.ErrFailedPrecondition, "shared PID namespace path"},
		{"no netns path", func(in *Input) { in.Namespaces.Network = "" }, errdefs.ErrFailedPrecondition, "network namespace path"},
		{"no ipc path", func(in *Input) { in.Namespaces.IPC = "" }, errdefs.ErrFailedPrecondition, "IPC namespace path"},
		{"no uts path", func(in *Input) { in.Namespaces.UTS = "" }, errdefs.ErrFailedPrecondition, "UTS namespace path"},
		{"user namespace in a host-userns pod", func(in *Input) {
			secCtx(in).NamespaceOptions.UsernsOptions = podUserns(1000)
		}, errdefs.ErrInvalidArgument, "conflicting user namespace options"},
		{"other mappings than the pod's", func(in *Input) {
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(1000)
			secCtx(in).NamespaceOptions.UsernsOptions = podUserns(2000)
			in.Namespaces.User = "/run/cradle/pods/p1/userns/user"
		}, errdefs.ErrInvalidArgument, "conflicting user namespace options"},
		{"pod user namespace without mappings", func(in *Input) {
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: pod}
		}, errdefs.ErrInvalidArgument, "exactly one uid mapping"},
		{"no userns path", func(in *Input) {
			in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(1000)
			secCtx(in).NamespaceOptions.UsernsOptions = podUserns(1000)
		}, errdefs.ErrFailedPrecondition, "user namespace path"},
		{"user namespace mode container", func(in *Input) {
			secCtx(in).NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: ctr}
		}, errdefs.ErrInvalidArgument, "user namespace mode CONTAINER"},
		{"unknown user namespace mode", func(in *Input) {
			secCtx(in).NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: 12}
		}, errdefs.ErrInvalidArgument, "user namespace mode 12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _ := testInput()
			in.Namespaces = testPaths
			in.TargetPIDNamespace = "/proc/99/ns/pid"
			c.edit(&in)
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

func TestHostUserNamespaceIsAccepted(t *testing.T) {
	in, _ := testInput()
	secCtx(&in).NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: node}
	for _, n := range mustBuild(t, in).Linux.Namespaces {
		if n.Type == specs.UserNamespace {
			t.Fatal("host user namespace produced a user namespace entry")
		}
	}
}

func TestContainerWithoutNamespaceOptionsFollowsThePod(t *testing.T) {
	pod := &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER},
	}}}
	n, err := containerNamespaces(pod, nil, SandboxNamespaces{IPC: "/run/x/ipc", UTS: "/run/x/uts"}, "", HostFacts{})
	if err != nil {
		t.Fatalf("a container without namespace options in a host-network pod: %v", err)
	}
	if !n.hostNet {
		t.Error("the container should share the pod's host network")
	}
}
