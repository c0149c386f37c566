package spec

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func sandboxInput() (SandboxInput, *fakeSystem) {
	sys := newFakeSystem()
	sys.files[DefaultInitPath] = ""
	cfg := podConfig()
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return SandboxInput{
		ID:         "p1",
		Config:     cfg,
		RootfsPath: "/run/cradle/pods/p1/init-root",
		Namespaces: SandboxNamespaces{Network: "/ns/net", IPC: "/ns/ipc", UTS: "/ns/uts", PID: "/ignored"},
		Node:       &Node{Host: testHost(), System: sys},
	}, sys
}

func TestBuildSandboxGolden(t *testing.T) {
	in, _ := sandboxInput()
	got, err := BuildSandbox(in)
	if err != nil {
		t.Fatal(err)
	}
	adj := -500 // -998 raised to the daemon's own score
	shares := uint64(2)
	want := &specs.Spec{
		Version:  specs.Version,
		Hostname: "web-0",
		Process: &specs.Process{
			User:            specs.User{UID: 65535, GID: 65535, AdditionalGids: []uint32{65535}},
			Args:            []string{"/catatonit", "-P"},
			Cwd:             "/",
			Capabilities:    &specs.LinuxCapabilities{},
			NoNewPrivileges: true,
			OOMScoreAdj:     &adj,
		},
		Root: &specs.Root{Path: "/run/cradle/pods/p1/init-root", Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=64k"}},
			{Destination: "/catatonit", Type: "bind", Source: "/usr/bin/catatonit", Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev"}},
		},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type":        "sandbox",
			"io.kubernetes.cri-o.ContainerType":       "sandbox",
			"io.kubernetes.cri-o.SandboxID":           "p1",
			"io.kubernetes.cri.sandbox-id":            "p1",
			"io.kubernetes.cri.sandbox-name":          "web-0",
			"io.kubernetes.cri.sandbox-namespace":     "shop",
			"io.kubernetes.cri.sandbox-uid":           "pod-uid-1",
			"io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/shop_web-0_pod-uid-1",
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				CPU:     &specs.LinuxCPU{Shares: &shares},
			},
			CgroupsPath: "/kubepods/burstable/podpod-uid-1/p1",
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: "/ns/net"},
				{Type: specs.IPCNamespace, Path: "/ns/ipc"},
				{Type: specs.UTSNamespace, Path: "/ns/uts"},
				{Type: specs.MountNamespace},
			},
			MaskedPaths:   DefaultMaskedPaths,
			ReadonlyPaths: DefaultReadonlyPaths,
		},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(specs.Linux{}, "Seccomp")); diff != "" {
		t.Fatalf("sandbox spec (-want +got):\n%s", diff)
	}
	// Default profile for a process without capabilities: no mount, no ptrace.
	if p := got.Linux.Seccomp; p == nil || allowed(p, "mount") || !allowed(p, "wait4") {
		t.Fatalf("sandbox seccomp = %+v", p)
	}
}

func TestBuildSandboxVariants(t *testing.T) {
	t.Run("host network, user and group, apparmor, custom init", func(t *testing.T) {
		in, sys := sandboxInput()
		sys.files["/opt/catatonit"] = ""
		in.InitPath = "/opt/catatonit"
		opts := in.Config.Linux.SecurityContext
		opts.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		opts.RunAsUser, opts.RunAsGroup = i64(1000), i64(2000)
		in.Node.Host.AppArmor = true
		in.Node.Host.Seccomp = false
		in.Node.AppArmorProfile = "cradle-default"
		s, err := BuildSandbox(in)
		if err != nil {
			t.Fatal(err)
		}
		if s.Hostname != "" || s.Linux.Seccomp != nil || s.Process.ApparmorProfile != "cradle-default" {
			t.Fatalf("hostname %q, seccomp %v, apparmor %q", s.Hostname, s.Linux.Seccomp != nil, s.Process.ApparmorProfile)
		}
		for _, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace || n.Type == specs.UTSNamespace {
				t.Fatalf("host network init has %s namespace", n.Type)
			}
		}
		if want := (specs.User{UID: 1000, GID: 2000, AdditionalGids: []uint32{2000}}); !cmp.Equal(s.Process.User, want) {
			t.Fatalf("user = %+v", s.Process.User)
		}
		if s.Mounts[2].Source != "/opt/catatonit" {
			t.Fatalf("init from %s", s.Mounts[2].Source)
		}
	})
	t.Run("run_as_user alone runs with gid 0", func(t *testing.T) {
		in, _ := sandboxInput()
		in.Config.Linux.SecurityContext.RunAsUser = i64(7)
		s, err := BuildSandbox(in)
		if err != nil || s.Process.User.UID != 7 || s.Process.User.GID != 0 {
			t.Fatalf("user = %+v, %v", s.Process.User, err)
		}
	})
	t.Run("sysctls are validated and applied", func(t *testing.T) {
		in, _ := sandboxInput()
		in.Config.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		s, err := BuildSandbox(in)
		if err != nil || s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
			t.Fatalf("sysctls = %v, %v", s.Linux.Sysctl, err)
		}
	})
}

func TestBuildSandboxErrors(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*SandboxInput, *fakeSystem)
		kind   error
		substr string
	}{
		{"no id", func(in *SandboxInput, _ *fakeSystem) { in.ID = "" }, errdefs.ErrInvalidArgument, "sandbox ID"},
		{"no config", func(in *SandboxInput, _ *fakeSystem) { in.Config = nil }, errdefs.ErrInvalidArgument, "sandbox config"},
		{"relative root", func(in *SandboxInput, _ *fakeSystem) { in.RootfsPath = "root" }, errdefs.ErrInvalidArgument, "rootfs path"},
		{"relative init", func(in *SandboxInput, _ *fakeSystem) { in.InitPath = "catatonit" }, errdefs.ErrInvalidArgument, "init path"},
		{"no node", func(in *SandboxInput, _ *fakeSystem) { in.Node = nil }, errdefs.ErrInvalidArgument, "node facts"},
		{"undetected host", func(in *SandboxInput, _ *fakeSystem) { in.Node.Host = HostFacts{} }, errdefs.ErrFailedPrecondition, "DetectHostFacts"},
		{"pid not shared", func(in *SandboxInput, _ *fakeSystem) {
			in.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_CONTAINER
		}, errdefs.ErrInvalidArgument, "only for pods that share a PID namespace"},
		{"init missing", func(_ *SandboxInput, sys *fakeSystem) { delete(sys.files, DefaultInitPath) }, errdefs.ErrFailedPrecondition, "sandbox init /usr/bin/catatonit"},
		{"group without user", func(in *SandboxInput, _ *fakeSystem) { in.Config.Linux.SecurityContext.RunAsGroup = i64(5) }, errdefs.ErrInvalidArgument, "without run_as_user"},
		{"bad uid", func(in *SandboxInput, _ *fakeSystem) { in.Config.Linux.SecurityContext.RunAsUser = i64(-3) }, errdefs.ErrInvalidArgument, "sandbox run_as_user"},
		{"bad gid", func(in *SandboxInput, _ *fakeSystem) {
			in.Config.Linux.SecurityContext.RunAsUser = i64(3)
			in.Config.Linux.SecurityContext.RunAsGroup = i64(1 << 40)
		}, errdefs.ErrInvalidArgument, "sandbox run_as_group"},
		{"no netns", func(in *SandboxInput, _ *fakeSystem) { in.Namespaces.Network = "" }, errdefs.ErrFailedPrecondition, "network namespace path"},
		{"unknown ipc mode", func(in *SandboxInput, _ *fakeSystem) { in.Config.Linux.SecurityContext.NamespaceOptions.Ipc = 8 }, errdefs.ErrInvalidArgument, "unknown ipc namespace mode 8"},
		{"user namespace without mappings", func(in *SandboxInput, _ *fakeSystem) {
			in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
		}, errdefs.ErrInvalidArgument, "exactly one uid mapping"},
		{"node-wide sysctl", func(in *SandboxInput, _ *fakeSystem) {
			in.Config.Linux.Sysctls = map[string]string{"vm.overcommit_memory": "1"}
		}, errdefs.ErrInvalidArgument, "not namespaced"},
		{"bad cgroup parent", func(in *SandboxInput, _ *fakeSystem) { in.Node.CgroupDriver = "systemd" }, errdefs.ErrInvalidArgument, "systemd slice"},
		{"bad rlimit", func(in *SandboxInput, _ *fakeSystem) { in.Node.Rlimits = []specs.POSIXRlimit{{Type: "nofile"}} }, errdefs.ErrInvalidArgument, "unknown rlimit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, sys := sandboxInput()
			c.edit(&in, sys)
			_, err := BuildSandbox(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

// A sandboxed runtime's pod gets its sandbox container whatever its PID
// mode; without a shared PID namespace it still owns a PID namespace of
// its own, and it says what it is in both annotation dialects.
func TestBuildSandboxSandboxedRuntime(t *testing.T) {
	in, _ := sandboxInput()
	in.Config.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_CONTAINER
	in.Sandboxed = true
	s, err := BuildSandbox(in)
	if err != nil {
		t.Fatal(err)
	}
	var pid *specs.LinuxNamespace
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			pid = &s.Linux.Namespaces[i]
		}
	}
	if pid == nil || pid.Path != "" {
		t.Errorf("pid namespace = %+v, want a new one", pid)
	}
	for k, want := range map[string]string{
		AnnotationContainerType: ContainerTypeSandbox, AnnotationCRIOContainerType: ContainerTypeSandbox,
		AnnotationSandboxID: "p1", AnnotationCRIOSandboxID: "p1",
	} {
		if got := s.Annotations[k]; got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
}
