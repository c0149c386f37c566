package spec

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func i64p(v int64) *int64 { return &v }

func TestCRIDevices(t *testing.T) {
	in, sys := testInput()
	sys.devices["/dev/fuse"] = []specs.LinuxDevice{charDevice("/dev/fuse", 10, 229)}
	sys.links["/dev/gpu0"] = "/dev/nvidia0"
	sys.devices["/dev/nvidia0"] = []specs.LinuxDevice{charDevice("/dev/nvidia0", 195, 0)}
	sys.devices["/dev/dri"] = []specs.LinuxDevice{charDevice("/dev/dri/card0", 226, 0), charDevice("/dev/dri/by-path/renderD128", 226, 128)}
	in.Config.Devices = []*runtimeapi.Device{
		{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"},
		{ContainerPath: "/dev/accel", HostPath: "/dev/gpu0", Permissions: "rw"},
		{ContainerPath: "/dev/gfx", HostPath: "/dev/dri"},
	}
	s := mustBuild(t, in)

	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, d.Path)
	}
	if want := []string{"/dev/fuse", "/dev/accel", "/dev/gfx/card0", "/dev/gfx/by-path/renderD128"}; !cmp.Equal(paths, want) {
		t.Fatalf("device paths = %v, want %v", paths, want)
	}
	if d := s.Linux.Devices[1]; d.Major != 195 || d.Minor != 0 || d.Type != "c" {
		t.Fatalf("symlinked device = %+v, want its target's numbers", d)
	}
	wantRules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: i64p(10), Minor: i64p(229), Access: "rwm"},
		{Allow: true, Type: "c", Major: i64p(195), Minor: i64p(0), Access: "rw"},
		{Allow: true, Type: "c", Major: i64p(226), Minor: i64p(0), Access: "rwm"},
		{Allow: true, Type: "c", Major: i64p(226), Minor: i64p(128), Access: "rwm"},
	}
	if diff := cmp.Diff(wantRules, s.Linux.Resources.Devices); diff != "" {
		t.Fatalf("device rules (-want +got):\n%s", diff)
	}
}

func TestCRIDeviceErrors(t *testing.T) {
	cases := []struct {
		name   string
		dev    *runtimeapi.Device
		setup  func(*fakeSystem)
		kind   error
		substr string
	}{
		{"relative container path", &runtimeapi.Device{ContainerPath: "dev/fuse", HostPath: "/dev/fuse"}, nil, errdefs.ErrInvalidArgument, "container_path"},
		{"relative host path", &runtimeapi.Device{ContainerPath: "/dev/fuse", HostPath: "fuse"}, nil, errdefs.ErrInvalidArgument, "host_path"},
		{"missing", &runtimeapi.Device{ContainerPath: "/dev/x", HostPath: "/dev/nope"}, nil, errdefs.ErrInvalidArgument, `"/dev/nope" does not exist`},
		{"not a device", &runtimeapi.Device{ContainerPath: "/dev/x", HostPath: "/etc/passwd"},
			func(f *fakeSystem) { f.files["/etc/passwd"] = "" }, errdefs.ErrInvalidArgument, "is not a device node"},
		{"empty directory", &runtimeapi.Device{ContainerPath: "/dev/x", HostPath: "/dev/empty"},
			func(f *fakeSystem) { f.devices["/dev/empty"] = nil }, errdefs.ErrInvalidArgument, "holds no device nodes"},
		{"bad permissions", &runtimeapi.Device{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwx"}, nil, errdefs.ErrInvalidArgument, `permissions "rwx"`},
		{"lookup error", &runtimeapi.Device{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse"},
			func(f *fakeSystem) { f.errs["/dev/fuse"] = errors.New("EIO") }, errdefs.ErrFailedPrecondition, "EIO"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, sys := testInput()
			sys.devices["/dev/fuse"] = []specs.LinuxDevice{charDevice("/dev/fuse", 10, 229)}
			if c.setup != nil {
				c.setup(sys)
			}
			in.Config.Devices = []*runtimeapi.Device{c.dev}
			_, err := Build(in)
			wantErr(t, err, c.kind, c.substr)
		})
	}

	in, sys := testInput()
	sys.devices["/dev/fuse"] = []specs.LinuxDevice{charDevice("/dev/fuse", 10, 229)}
	in.Config.Devices = []*runtimeapi.Device{
		{ContainerPath: "/dev/f", HostPath: "/dev/fuse"}, {ContainerPath: "/dev/f", HostPath: "/dev/fuse"},
	}
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, "two devices target /dev/f")
}

func TestPrivilegedDevices(t *testing.T) {
	sys := newFakeSystem()
	sys.devices["/dev/fuse"] = []specs.LinuxDevice{charDevice("/dev/fuse", 10, 229)}
	sys.devices["/dev"] = []specs.LinuxDevice{charDevice("/dev/fuse", 10, 229), charDevice("/dev/kvm", 10, 232)}
	devs, rules, err := buildDevices([]*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "r"}}, true, sys)
	if err != nil {
		t.Fatal(err)
	}
	// The requested device is not duplicated by the host list.
	if len(devs) != 2 || devs[0].Path != "/dev/fuse" || devs[1].Path != "/dev/kvm" {
		t.Fatalf("devices = %+v", devs)
	}
	if !cmp.Equal(rules, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}) {
		t.Fatalf("rules = %+v", rules)
	}

	sys.errs["/dev"] = errors.New("EACCES")
	_, _, err = buildDevices(nil, true, sys)
	wantErr(t, err, errdefs.ErrFailedPrecondition, "list host devices")
}

func TestCDIDevicesWithoutRegistryAreRefused(t *testing.T) {
	in, _ := testInput()
	in.Config.CDIDevices = []*runtimeapi.CDIDevice{{Name: "nvidia.com/gpu=0"}}
	_, err := Build(in)
	wantErr(t, err, errdefs.ErrUnimplemented, `"nvidia.com/gpu=0"`)
}

type fakeCDI struct{ got []string }

func (f *fakeCDI) Inject(s *specs.Spec, devices []string) error {
	f.got = devices
	s.Process.Env = append(s.Process.Env, "INJECTED=1")
	return nil
}

func TestCDIDevicesFromFieldAndAnnotations(t *testing.T) {
	in, _ := testInput()
	f := &fakeCDI{}
	in.Node.CDI = f
	in.Config.CDIDevices = []*runtimeapi.CDIDevice{{Name: "vendor.com/dev=b"}, {Name: "vendor.com/dev=a"}}
	in.Config.Annotations = map[string]string{"cdi.k8s.io/plugin_x": "vendor.com/dev=a,vendor.com/dev=c", "other": "x"}
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"vendor.com/dev=b", "vendor.com/dev=a", "vendor.com/dev=c"}; !cmp.Equal(f.got, want) {
		t.Fatalf("injected %v, want %v", f.got, want)
	}
	if !slices.Contains(s.Process.Env, "INJECTED=1") {
		t.Fatalf("the injector's edit is lost: %v", s.Process.Env)
	}

	in.Config.CDIDevices = []*runtimeapi.CDIDevice{{Name: "gpu0"}}
	_, err = Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, `"gpu0"`)
	in.Config.CDIDevices = nil
	in.Config.Annotations = map[string]string{"cdi.k8s.io/x": "not-qualified"}
	_, err = Build(in)
	wantErr(t, err, errdefs.ErrInvalidArgument, `"not-qualified"`)
}
