package spec

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// TestBuildGolden pins the whole spec of an ordinary container, so any
// change to what runc receives shows up as a reviewed diff.
func TestBuildGolden(t *testing.T) {
	in, _ := testInput()
	got := mustBuild(t, in)

	defaultCaps := []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
		"CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
		"CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
	}
	want := &specs.Spec{
		Version:  specs.Version,
		Hostname: "web-0",
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}},
			Args: []string{"nginx", "-g", "daemon off;"},
			Env:  []string{"PATH=/usr/sbin:/usr/bin", "HOSTNAME=web-0", "NGINX_VERSION=1.27"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
			},
		},
		Root: &specs.Root{Path: "/var/lib/cradle/containers/c1/rootfs"},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "/run/cradle/pods/p1/hostname", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "/run/cradle/pods/p1/hosts", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/run/cradle/pods/p1/resolv.conf", Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/dev/shm", Type: "bind", Source: "/run/cradle/pods/p1/shm", Options: []string{"rbind", "rprivate", "rw", "nosuid", "nodev", "noexec"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Annotations: map[string]string{
			"io.kubernetes.cri.container-type":    "container",
			"io.kubernetes.cri-o.ContainerType":   "container",
			"io.kubernetes.cri-o.SandboxID":       "p1",
			"io.kubernetes.cri.sandbox-id":        "p1",
			"io.kubernetes.cri.sandbox-name":      "web-0",
			"io.kubernetes.cri.sandbox-namespace": "shop",
			"io.kubernetes.cri.sandbox-uid":       "pod-uid-1",
			"io.kubernetes.cri.container-name":    "nginx",
			"io.kubernetes.cri.image-name":        "nginx:1.27",
		},
		Linux: &specs.Linux{
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			CgroupsPath: "/kubepods/burstable/podpod-uid-1/c1",
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: "/run/cradle/ns/p1/net"},
				{Type: specs.IPCNamespace, Path: "/run/cradle/ns/p1/ipc"},
				{Type: specs.UTSNamespace, Path: "/run/cradle/ns/p1/uts"},
				{Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("spec mismatch (-want +got):\n%s", diff)
	}
	// The spec must survive the trip to config.json unchanged.
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back specs.Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &back); diff != "" {
		t.Fatalf("spec changed through JSON (-want +got):\n%s", diff)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	in, _ := testInput()
	in.Sandbox.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1", "net.core.somaxconn": "1024"}
	in.Image.Volumes = map[string]struct{}{"/data": {}, "/cache": {}, "/var/log": {}}
	in.VolumeDir = "/var/lib/cradle/containers/c1/volumes"
	first, _ := json.Marshal(mustBuild(t, in))
	for range 20 {
		again, _ := json.Marshal(mustBuild(t, in))
		if string(again) != string(first) {
			t.Fatalf("two builds of one input differ:\n%s\n%s", first, again)
		}
	}
}

func TestBuildRejectsIncompleteInput(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Input)
		kind   error
		substr string
	}{
		{"no id", func(in *Input) { in.ID = "" }, errdefs.ErrInvalidArgument, "container ID"},
		{"no config", func(in *Input) { in.Config = nil }, errdefs.ErrInvalidArgument, "container config"},
		{"no name", func(in *Input) { in.Config.Metadata = nil }, errdefs.ErrInvalidArgument, "metadata name"},
		{"no sandbox", func(in *Input) { in.Sandbox = nil }, errdefs.ErrInvalidArgument, "sandbox config"},
		{"relative rootfs", func(in *Input) { in.RootfsPath = "rootfs" }, errdefs.ErrInvalidArgument, "not absolute"},
		{"no node", func(in *Input) { in.Node = nil }, errdefs.ErrInvalidArgument, "node facts"},
		{"undetected host", func(in *Input) { in.Node.Host = HostFacts{} }, errdefs.ErrFailedPrecondition, "DetectHostFacts"},
		{"bad host cap", func(in *Input) { in.Node.Host.Capabilities = []string{"CAP_FLY"} }, errdefs.ErrFailedPrecondition, "CAP_FLY"},
		{"privileged in plain pod", func(in *Input) { secCtx(in).Privileged = true }, errdefs.ErrInvalidArgument, "not privileged"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, _ := testInput()
			c.edit(&in)
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

func TestBuildNilLinuxSectionsUseDefaults(t *testing.T) {
	// crictl may send configs without linux sections; the CRI default for
	// every namespace is then POD, so the pod's shared PID namespace is used.
	in, _ := testInput()
	in.Config.Linux = nil
	in.Sandbox.Linux = nil
	in.Namespaces.PID = "/proc/42/ns/pid"
	s := mustBuild(t, in)
	if s.Linux.Namespaces[0] != (specs.LinuxNamespace{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}) {
		t.Fatalf("namespaces = %+v, want the pod's PID namespace first", s.Linux.Namespaces)
	}
	if s.Linux.CgroupsPath != "/cradle/c1" {
		t.Fatalf("cgroups path without a pod parent = %q", s.Linux.CgroupsPath)
	}
	if s.Process.OOMScoreAdj != nil || s.Linux.Resources.CPU != nil || s.Linux.Resources.Memory != nil {
		t.Fatalf("no resources asked, yet some set: %+v", s.Linux.Resources)
	}
}

func TestBuildAnnotationsImageNameFallbacks(t *testing.T) {
	in, _ := testInput()
	in.ImageName = "docker.io/library/nginx:1.27"
	if got := mustBuild(t, in).Annotations[AnnotationImageName]; got != "docker.io/library/nginx:1.27" {
		t.Fatalf("explicit image name: %q", got)
	}
	in.ImageName = ""
	in.Config.Image = &runtimeapi.ImageSpec{Image: "sha256:abc"}
	if got := mustBuild(t, in).Annotations[AnnotationImageName]; got != "sha256:abc" {
		t.Fatalf("image field fallback: %q", got)
	}
}

func TestBuildPrivilegedContainer(t *testing.T) {
	in, sys := testInput()
	in.Sandbox.Linux.SecurityContext.Privileged = true
	sc := secCtx(&in)
	sc.Privileged = true
	sc.MaskedPaths = []string{"/proc/kcore"}
	sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
	sys.devices["/dev"] = []specs.LinuxDevice{charDevice("/dev/null", 1, 3), charDevice("/dev/fuse", 10, 229)}
	s := mustBuild(t, in)

	if got, want := s.Process.Capabilities.Bounding, testHost().Capabilities; !cmp.Equal(got, want) {
		t.Errorf("bounding = %v, want the host's set %v", got, want)
	}
	if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
		t.Errorf("privileged keeps seccomp %v, masked %v or readonly %v", s.Linux.Seccomp != nil, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, m := range s.Mounts {
		if (m.Type == "sysfs" || m.Type == "cgroup") && m.Options[len(m.Options)-1] != "rw" {
			t.Errorf("%s is not writable: %v", m.Destination, m.Options)
		}
	}
	if len(s.Linux.Devices) != 2 || s.Linux.Devices[1].Path != "/dev/fuse" {
		t.Errorf("host devices = %+v", s.Linux.Devices)
	}
	if want := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}; !cmp.Equal(s.Linux.Resources.Devices, want) {
		t.Errorf("device rules = %+v, want all allowed", s.Linux.Resources.Devices)
	}
}

// TestBuildPropagatesEveryStageError makes sure no stage's error is lost on
// the way out of Build.
func TestBuildPropagatesEveryStageError(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Input, *fakeSystem)
		kind   error
		substr string
	}{
		{"namespaces", func(in *Input, _ *fakeSystem) { in.Namespaces.IPC = "" }, errdefs.ErrFailedPrecondition, "IPC namespace"},
		{"env", func(in *Input, _ *fakeSystem) { in.Config.Envs = []*runtimeapi.KeyValue{{Key: ""}} }, errdefs.ErrInvalidArgument, "environment"},
		{"working dir", func(in *Input, _ *fakeSystem) { in.Config.WorkingDir = "x" }, errdefs.ErrInvalidArgument, "working_dir"},
		{"user", func(in *Input, _ *fakeSystem) { in.Image.User = "ghost" }, errdefs.ErrInvalidArgument, "ghost"},
		{"capabilities", func(in *Input, _ *fakeSystem) {
			secCtx(in).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NOPE"}}
		}, errdefs.ErrInvalidArgument, "NOPE"},
		{"apparmor", func(in *Input, _ *fakeSystem) { secCtx(in).ApparmorProfile = "bad" }, errdefs.ErrInvalidArgument, "apparmor"},
		{"mounts", func(in *Input, _ *fakeSystem) {
			in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", HostPath: "/missing"}}
		}, errdefs.ErrInvalidArgument, "/missing"},
		{"devices", func(in *Input, _ *fakeSystem) {
			in.Config.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/x", HostPath: "/dev/missing"}}
		}, errdefs.ErrInvalidArgument, "/dev/missing"},
		{"resources", func(in *Input, _ *fakeSystem) {
			in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuShares: -1}
		}, errdefs.ErrInvalidArgument, "cpu_shares"},
		{"sysctls", func(in *Input, _ *fakeSystem) { in.Sandbox.Linux.Sysctls = map[string]string{"vm.x": "1"} }, errdefs.ErrInvalidArgument, "vm.x"},
		{"cgroups", func(in *Input, _ *fakeSystem) { in.Node.CgroupDriver = "x" }, errdefs.ErrInvalidArgument, "cgroup driver"},
		{"protected paths", func(in *Input, _ *fakeSystem) { secCtx(in).MaskedPaths = []string{"x"} }, errdefs.ErrInvalidArgument, "masked"},
		{"seccomp", func(in *Input, _ *fakeSystem) { secCtx(in).SeccompProfilePath = "x" }, errdefs.ErrInvalidArgument, "seccomp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, sys := testInput()
			c.edit(&in, sys)
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

// TestBuildOnTheRealHost runs with the default System against real paths.
func TestBuildOnTheRealHost(t *testing.T) {
	in, _ := testInput()
	in.Node.System = nil
	in.Files = SandboxFiles{}
	dir := t.TempDir()
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: dir, Readonly: true}}
	in.Config.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rw"}}
	s := mustBuild(t, in)
	if m := mountAt(t, s, "/data"); m.Source != dir {
		t.Fatalf("mount source %q", m.Source)
	}
	if d := s.Linux.Devices; len(d) != 1 || d[0].Major != 1 || d[0].Minor != 3 || d[0].Path != "/dev/mynull" {
		t.Fatalf("devices = %+v", d)
	}
}
