package spec

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func destinations(ms []specs.Mount) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Destination)
	}
	return out
}

func mountAt(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	t.Fatalf("no mount at %s in %v", dst, destinations(s.Mounts))
	return specs.Mount{}
}

func hasMount(s *specs.Spec, dst string) bool {
	return slices.Contains(destinations(s.Mounts), dst)
}

func TestCRIMounts(t *testing.T) {
	in, sys := testInput()
	sys.dirs["/srv/data"] = true
	sys.dirs["/srv/real-cache"] = true
	sys.links["/srv/cache"] = "/srv/real-cache"
	sys.dirs["/srv/shared"] = true
	sys.propagation["/srv/shared"] = "shared"
	sys.dirs["/srv/slave"] = true
	sys.propagation["/srv/slave"] = "slave"
	sys.files["/srv/config.yaml"] = "x"
	in.Config.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/var/lib/data/", HostPath: "/srv/data"},
		{ContainerPath: "/cache", HostPath: "/srv/cache", Readonly: true},
		{ContainerPath: "/rro", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true},
		{ContainerPath: "/h2c", HostPath: "/srv/slave", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
		{ContainerPath: "/bidi", HostPath: "/srv/shared", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		{ContainerPath: "/etc/app/config.yaml", HostPath: "/srv/config.yaml", MountOptions: []string{"noexec", "nosuid", "noexec"}, SelinuxRelabel: true},
	}
	s := mustBuild(t, in)
	want := map[string]specs.Mount{
		"/var/lib/data":        {Destination: "/var/lib/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rprivate", "rw"}},
		"/cache":               {Destination: "/cache", Type: "bind", Source: "/srv/real-cache", Options: []string{"rbind", "rprivate", "ro"}},
		"/rro":                 {Destination: "/rro", Type: "bind", Source: "/srv/data", Options: []string{"rbind", "rprivate", "rro"}},
		"/h2c":                 {Destination: "/h2c", Type: "bind", Source: "/srv/slave", Options: []string{"rbind", "rslave", "rw"}},
		"/bidi":                {Destination: "/bidi", Type: "bind", Source: "/srv/shared", Options: []string{"rbind", "rshared", "rw"}},
		"/etc/app/config.yaml": {Destination: "/etc/app/config.yaml", Type: "bind", Source: "/srv/config.yaml", Options: []string{"rbind", "rprivate", "rw", "noexec", "nosuid"}},
	}
	for dst, w := range want {
		if diff := cmp.Diff(w, mountAt(t, s, dst)); diff != "" {
			t.Errorf("mount %s (-want +got):\n%s", dst, diff)
		}
	}
	if s.Linux.RootfsPropagation != "rshared" {
		t.Errorf("rootfs propagation = %q, want rshared for a bidirectional mount", s.Linux.RootfsPropagation)
	}
}

func TestRootfsPropagation(t *testing.T) {
	for _, c := range []struct {
		props []runtimeapi.MountPropagation
		want  string
	}{
		{nil, ""},
		{[]runtimeapi.MountPropagation{runtimeapi.MountPropagation_PROPAGATION_PRIVATE}, ""},
		{[]runtimeapi.MountPropagation{runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "rslave"},
		{[]runtimeapi.MountPropagation{runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL, runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "rshared"},
		{[]runtimeapi.MountPropagation{runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "rshared"},
	} {
		in, sys := testInput()
		for i, p := range c.props {
			src := "/src" + strings.Repeat("x", i)
			sys.dirs[src] = true
			sys.propagation[src] = "shared"
			in.Config.Mounts = append(in.Config.Mounts, &runtimeapi.Mount{ContainerPath: "/m" + strings.Repeat("x", i), HostPath: src, Propagation: p})
		}
		if got := mustBuild(t, in).Linux.RootfsPropagation; got != c.want {
			t.Errorf("propagations %v: rootfs %q, want %q", c.props, got, c.want)
		}
	}
}

func TestCRIMountErrors(t *testing.T) {
	cases := []struct {
		name   string
		mount  *runtimeapi.Mount
		setup  func(*fakeSystem)
		kind   error
		substr string
	}{
		{"relative container path", &runtimeapi.Mount{ContainerPath: "data", HostPath: "/srv/data"}, nil, errdefs.ErrInvalidArgument, `container_path "data" is not absolute`},
		{"empty container path", &runtimeapi.Mount{HostPath: "/srv/data"}, nil, errdefs.ErrInvalidArgument, "not absolute"},
		{"over the root", &runtimeapi.Mount{ContainerPath: "/", HostPath: "/srv/data"}, nil, errdefs.ErrInvalidArgument, "root"},
		{"missing host path", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/nope"}, nil, errdefs.ErrInvalidArgument, `host_path "/srv/nope" for /data does not exist`},
		{"relative host path", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "srv"}, nil, errdefs.ErrInvalidArgument, "not absolute"},
		{"empty host path", &runtimeapi.Mount{ContainerPath: "/data"}, nil, errdefs.ErrInvalidArgument, `host_path ""`},
		{"unreadable host path", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data"},
			func(f *fakeSystem) { f.errs["/srv/data"] = errors.New("permission denied") }, errdefs.ErrFailedPrecondition, "permission denied"},
		{"unknown propagation", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: 9}, nil, errdefs.ErrInvalidArgument, "unknown mount propagation 9"},
		{"bidirectional on a private mount", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			nil, errdefs.ErrFailedPrecondition, "is on a private mount"},
		{"bidirectional on a slave mount", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			func(f *fakeSystem) { f.propagation["/srv/data"] = "slave" }, errdefs.ErrFailedPrecondition, "needs a shared one"},
		{"host-to-container on a private mount", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			nil, errdefs.ErrFailedPrecondition, "needs a shared or slave one"},
		{"propagation lookup fails", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			func(f *fakeSystem) { f.errs["propagation:/srv/data"] = errors.New("no mountinfo") }, errdefs.ErrFailedPrecondition, "no mountinfo"},
		{"rro without readonly", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", RecursiveReadOnly: true}, nil, errdefs.ErrInvalidArgument, "must also be readonly"},
		{"rro with propagation", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			func(f *fakeSystem) { f.propagation["/srv/data"] = "shared" }, errdefs.ErrInvalidArgument, "needs private propagation"},
		{"rro with bidirectional propagation", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			func(f *fakeSystem) { f.propagation["/srv/data"] = "shared" }, errdefs.ErrInvalidArgument, "needs private propagation"},
		// Invalid whatever the host looks like: a private or missing host
		// path must not turn these into FailedPrecondition.
		{"rro with bidirectional propagation on a private mount", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			nil, errdefs.ErrInvalidArgument, "needs private propagation"},
		{"rro with propagation on an unreadable host path", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
			func(f *fakeSystem) { f.errs["/srv/data"] = errors.New("permission denied") }, errdefs.ErrInvalidArgument, "needs private propagation"},
		{"unknown propagation on a missing host path", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/nope", Propagation: 9}, nil, errdefs.ErrInvalidArgument, "unknown mount propagation 9"},
		{"bad mount option on a private mount", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"suid"}, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			nil, errdefs.ErrInvalidArgument, `mount option "suid"`},
		{"bad mount option", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"remount"}}, nil, errdefs.ErrInvalidArgument, `mount option "remount"`},
		{"mount option that lifts nosuid", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"nodev", "suid"}}, nil, errdefs.ErrInvalidArgument, `mount option "suid"`},
		{"mount option that lifts noexec", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"exec"}}, nil, errdefs.ErrInvalidArgument, `mount option "exec"`},
		{"mount option that lifts nodev", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"dev"}}, nil, errdefs.ErrInvalidArgument, `mount option "dev"`},
		{"mount option with a value", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"mode=777"}}, nil, errdefs.ErrInvalidArgument, `mount option "mode=777"`},
		{"propagation as a mount option", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", MountOptions: []string{"rshared"}}, nil, errdefs.ErrInvalidArgument, `mount option "rshared"`},
		{"id-mapped", &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", UidMappings: []*runtimeapi.IDMapping{{HostId: 1000, Length: 1}}}, nil, errdefs.ErrUnimplemented, "id-mapped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, sys := testInput()
			sys.dirs["/srv/data"] = true
			if c.setup != nil {
				c.setup(sys)
			}
			in.Config.Mounts = []*runtimeapi.Mount{c.mount}
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

func TestRecursiveReadOnlyNeedsKernel(t *testing.T) {
	in, sys := testInput()
	sys.dirs["/srv/data"] = true
	in.Node.Host.RecursiveReadOnly = false
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true}}
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrFailedPrecondition, "5.12")
}

// RRO is honoured per handler: the kernel may support it while the
// handler's runtime (runc < 1.2) does not.
func TestRecursiveReadOnlyNeedsTheHandlersRuntime(t *testing.T) {
	mount := &runtimeapi.Mount{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, RecursiveReadOnly: true}
	rro := map[string]RuntimeFeatures{"": {RecursiveReadOnly: true}, "runc": {RecursiveReadOnly: true}, "old-runc": {}}
	for _, c := range []struct {
		handler string
		ok      bool
	}{{"", true}, {"runc", true}, {"old-runc", false}, {"not-detected", false}} {
		t.Run(c.handler, func(t *testing.T) {
			in, sys := testInput()
			sys.dirs["/srv/data"] = true
			in.Node.Runtimes = rro
			in.Handler = c.handler
			in.Config.Mounts = []*runtimeapi.Mount{mount}
			s, err := Build(in)
			if !c.ok {
				wantErr(t, err, errdefs.ErrFailedPrecondition, "does not support recursive read-only")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := mountAt(t, s, "/data")
			if !slices.Contains(m.Options, "rro") || slices.Contains(m.Options, "ro") {
				t.Errorf("options %v: want rro and not ro", m.Options)
			}
		})
	}
}

func TestNewRuntimeFeatures(t *testing.T) {
	newKernel, oldKernel := testHost(), testHost()
	oldKernel.RecursiveReadOnly = false
	withRRO := []string{"bind", "rbind", "ro", "rro", "rw"}
	runc11 := []string{"bind", "rbind", "ro", "rw"}
	for _, c := range []struct {
		name string
		host HostFacts
		opts []string
		want bool
	}{
		{"new kernel, runtime with rro", newKernel, withRRO, true},
		{"new kernel, runtime without rro", newKernel, runc11, false},
		{"new kernel, runtime without features", newKernel, nil, false},
		{"old kernel, runtime with rro", oldKernel, withRRO, false},
	} {
		if got := NewRuntimeFeatures(c.host, c.opts, nil).RecursiveReadOnly; got != c.want {
			t.Errorf("%s: RecursiveReadOnly = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestDuplicateMountDestination(t *testing.T) {
	in, sys := testInput()
	sys.dirs["/a"], sys.dirs["/b"] = true, true
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/a"}, {ContainerPath: "/data/", HostPath: "/b"}}
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "two mounts target /data")
}

func TestMountOrderParentsFirst(t *testing.T) {
	in, sys := testInput()
	for _, p := range []string{"/h/1", "/h/2", "/h/3", "/h/4"} {
		sys.dirs[p] = true
	}
	// Given children before parents, in no particular order.
	in.Config.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/a/b/c", HostPath: "/h/1"},
		{ContainerPath: "/a", HostPath: "/h/2"},
		{ContainerPath: "/z/y", HostPath: "/h/3"},
		{ContainerPath: "/a/b", HostPath: "/h/4"},
	}
	s := mustBuild(t, in)
	want := []string{
		"/proc", "/dev", "/sys", "/a",
		"/dev/pts", "/dev/mqueue", "/z/y", "/a/b", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm",
		"/sys/fs/cgroup", "/a/b/c",
	}
	if got := destinations(s.Mounts); !cmp.Equal(got, want) {
		t.Fatalf("order = %v\nwant    %v", got, want)
	}
}

func TestSandboxFileMounts(t *testing.T) {
	t.Run("readonly rootfs makes them read-only", func(t *testing.T) {
		in, _ := testInput()
		secCtx(&in).ReadonlyRootfs = true
		s := mustBuild(t, in)
		if !s.Root.Readonly {
			t.Fatal("root is writable")
		}
		for _, dst := range []string{etcHostname, etcHosts, etcResolvConf} {
			if o := mountAt(t, s, dst).Options; o[len(o)-1] != "ro" {
				t.Errorf("%s options %v, want ro", dst, o)
			}
		}
		if o := mountAt(t, s, devShm).Options; !slices.Contains(o, "rw") {
			t.Errorf("/dev/shm must stay writable: %v", o)
		}
	})
	t.Run("a container mount wins", func(t *testing.T) {
		in, sys := testInput()
		sys.files["/my/hosts"] = ""
		in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/etc/hosts", HostPath: "/my/hosts"}}
		s := mustBuild(t, in)
		if m := mountAt(t, s, etcHosts); m.Source != "/my/hosts" {
			t.Fatalf("/etc/hosts from %s", m.Source)
		}
		if n := strings.Count(strings.Join(destinations(s.Mounts), " "), "/etc/hosts"); n != 1 {
			t.Fatalf("/etc/hosts mounted %d times", n)
		}
	})
	t.Run("empty paths are skipped", func(t *testing.T) {
		in, _ := testInput()
		in.Files = SandboxFiles{}
		s := mustBuild(t, in)
		for _, dst := range []string{etcHostname, etcHosts, etcResolvConf} {
			if hasMount(s, dst) {
				t.Errorf("%s mounted without a source", dst)
			}
		}
		// Without a pod /dev/shm the container gets a private tmpfs.
		if m := mountAt(t, s, devShm); m.Type != "tmpfs" {
			t.Errorf("/dev/shm = %+v, want a tmpfs", m)
		}
	})
	t.Run("host IPC shares the host's /dev/shm", func(t *testing.T) {
		in, _ := testInput()
		in.Sandbox.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
		secCtx(&in).NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
		if m := mountAt(t, mustBuild(t, in), devShm); m.Source != "/dev/shm" || m.Type != "bind" {
			t.Fatalf("/dev/shm = %+v, want the host's", m)
		}
	})
	t.Run("a container /dev replaces everything below it", func(t *testing.T) {
		in, sys := testInput()
		sys.dirs["/hostdev"] = true
		in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/dev", HostPath: "/hostdev"}}
		s := mustBuild(t, in)
		for _, m := range s.Mounts {
			if strings.HasPrefix(m.Destination, "/dev") && m.Source != "/hostdev" {
				t.Errorf("%s still mounted from %s", m.Destination, m.Source)
			}
		}
	})
}

func TestImageVolumes(t *testing.T) {
	in, sys := testInput()
	sys.dirs["/srv/logs"] = true
	in.Image.Volumes = map[string]struct{}{"/data": {}, "var/cache": {}, "/logs": {}, "/": {}}
	in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/logs", HostPath: "/srv/logs"}}

	in.VolumeDir = ""
	if s := mustBuild(t, in); hasMount(s, "/data") {
		t.Fatal("volume mounted without a volume dir")
	}

	in.VolumeDir = "/var/lib/cradle/containers/c1/volumes"
	vols := ImageVolumes(in.VolumeDir, in.Image, in.Config)
	if got := []string{vols[0].ContainerPath, vols[1].ContainerPath}; len(vols) != 2 || !cmp.Equal(got, []string{"/data", "/var/cache"}) {
		t.Fatalf("volumes = %+v, want /data and /var/cache (the CRI mount covers /logs)", vols)
	}
	if vols[0].HostPath == vols[1].HostPath || !strings.HasPrefix(vols[0].HostPath, in.VolumeDir+"/") {
		t.Fatalf("host paths %q, %q", vols[0].HostPath, vols[1].HostPath)
	}
	// Stable across calls, so a retried create reuses the directories.
	if again := ImageVolumes(in.VolumeDir, in.Image, in.Config); !cmp.Equal(again, vols) {
		t.Fatalf("volumes changed between calls: %+v vs %+v", again, vols)
	}
	s := mustBuild(t, in)
	if m := mountAt(t, s, "/var/cache"); m.Source != vols[1].HostPath || !cmp.Equal(m.Options, []string{"rbind", "rprivate", "rw"}) {
		t.Fatalf("volume mount = %+v", m)
	}
	if m := mountAt(t, s, "/logs"); m.Source != "/srv/logs" {
		t.Fatalf("/logs from %s, want the CRI mount", m.Source)
	}
}

// A runtime that cannot list its capabilities (gVisor's runsc has no
// `features`) gets only those every runtime knows: even a privileged
// container's set leaves out CAP_PERFMON and the later ones, which the
// runtime would refuse; a runtime that lists them gets them.
func TestCapabilitiesBoundedByRuntime(t *testing.T) {
	host := testHost()
	host.Capabilities = capNames[:]
	n := &Node{Host: host, Runtimes: map[string]RuntimeFeatures{
		"old": NewRuntimeFeatures(host, nil, nil),
		"new": NewRuntimeFeatures(host, nil, capNames[:]),
	}}
	old, recent := n.capabilitiesFor("old"), n.capabilitiesFor("new")
	if slices.Contains(old, "CAP_PERFMON") || !slices.Contains(old, "CAP_AUDIT_READ") || len(old) != 38 {
		t.Errorf("capabilities for a runtime without features: %v", old)
	}
	if !slices.Contains(recent, "CAP_CHECKPOINT_RESTORE") || len(recent) != len(capNames) {
		t.Errorf("capabilities for a runtime that lists them all: %v", recent)
	}
	if got := n.capabilitiesFor("unknown"); len(got) != len(capNames) {
		t.Errorf("an undetected handler is not bounded: %v", got)
	}
}
