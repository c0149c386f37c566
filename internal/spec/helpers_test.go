package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeSystem is a host made of maps.
type fakeSystem struct {
	files       map[string]string // regular files, for Stat and ReadFile
	dirs        map[string]bool
	links       map[string]string // symlink path → real path
	devices     map[string][]specs.LinuxDevice
	propagation map[string]string // default "private"
	errs        map[string]error  // forced errors from any lookup of a path
}

func newFakeSystem() *fakeSystem {
	return &fakeSystem{
		files: map[string]string{}, dirs: map[string]bool{}, links: map[string]string{},
		devices: map[string][]specs.LinuxDevice{}, propagation: map[string]string{}, errs: map[string]error{},
	}
}

func (f *fakeSystem) real(p string) string {
	if r, ok := f.links[p]; ok {
		return r
	}
	return p
}

func (f *fakeSystem) exists(p string) bool {
	_, file := f.files[p]
	_, dev := f.devices[p]
	return file || dev || f.dirs[p]
}

func notExist(op, p string) error { return &fs.PathError{Op: op, Path: p, Err: fs.ErrNotExist} }

func (f *fakeSystem) Stat(p string) (fs.FileInfo, error) {
	if err := f.errs[p]; err != nil {
		return nil, err
	}
	r := f.real(p)
	if !f.exists(r) {
		return nil, notExist("stat", p)
	}
	return fakeInfo{name: r, dir: f.dirs[r]}, nil
}

func (f *fakeSystem) EvalSymlinks(p string) (string, error) {
	if err := f.errs[p]; err != nil {
		return "", err
	}
	r := f.real(p)
	if !f.exists(r) {
		return "", notExist("lstat", p)
	}
	return r, nil
}

func (f *fakeSystem) ReadFile(p string) ([]byte, error) {
	if err := f.errs[p]; err != nil {
		return nil, err
	}
	s, ok := f.files[f.real(p)]
	if !ok {
		return nil, notExist("open", p)
	}
	return []byte(s), nil
}

func (f *fakeSystem) Devices(p string) ([]specs.LinuxDevice, error) {
	if err := f.errs[p]; err != nil {
		return nil, err
	}
	if d, ok := f.devices[p]; ok {
		return append([]specs.LinuxDevice{}, d...), nil
	}
	if f.exists(p) {
		return nil, fmt.Errorf("%s: %w", p, ErrNotDevice)
	}
	return nil, notExist("lstat", p)
}

func (f *fakeSystem) Propagation(p string) (string, error) {
	if err := f.errs["propagation:"+p]; err != nil {
		return "", err
	}
	if v, ok := f.propagation[p]; ok {
		return v, nil
	}
	return "private", nil
}

type fakeInfo struct {
	name string
	dir  bool
}

func (i fakeInfo) Name() string { return i.name }
func (i fakeInfo) Size() int64  { return 0 }
func (i fakeInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.dir }
func (i fakeInfo) Sys() any           { return nil }

func charDevice(p string, major, minor int64) specs.LinuxDevice {
	mode := fs.FileMode(0o666)
	var uid, gid uint32
	return specs.LinuxDevice{Path: p, Type: "c", Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid}
}

// testHost is a cgroup v1 node with seccomp and without AppArmor, SELinux
// or CAP_SYS_RESOURCE, like the CI machine.
func testHost() HostFacts {
	caps := capSet(1<<len(capNames)-1) &^ setOf([]string{"CAP_SYS_RESOURCE"})
	return HostFacts{
		Capabilities:      caps.names(),
		OOMScoreAdj:       -500,
		Seccomp:           true,
		Hugetlb:           true,
		HugePageSizes:     []string{"2MB", "1GB"},
		SwapAccounting:    true,
		RecursiveReadOnly: true,
		Hostname:          "node-1",
	}
}

// testRootFS is an image root with a few users and groups.
func testRootFS() fstest.MapFS {
	return fstest.MapFS{
		"etc/passwd": {Data: []byte(strings.Join([]string{
			"root:x:0:0:root:/root:/bin/sh",
			"app:x:1000:1000:app:/home/app:/bin/sh",
			"web:x:33:33:www:/var/www:/bin/false",
			"nogroup:x:1500:4242::/:/bin/false",
			"",
		}, "\n"))},
		"etc/group": {Data: []byte(strings.Join([]string{
			"root:x:0:",
			"app:x:1000:",
			"web:x:33:",
			"audio:x:29:app,web",
			"video:x:44:app",
			"staff:x:50:web",
			"",
		}, "\n"))},
	}
}

func podConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-0", Namespace: "shop", Uid: "pod-uid-1"},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/shop_web-0_pod-uid-1",
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/burstable/podpod-uid-1",
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

func containerConfig() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "nginx"},
		Image:    &runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "nginx:1.27"},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
}

// testInput returns a valid request and its fake host, for tests to edit.
func testInput() (Input, *fakeSystem) {
	sys := newFakeSystem()
	for _, p := range []string{"/run/cradle/pods/p1/hostname", "/run/cradle/pods/p1/hosts", "/run/cradle/pods/p1/resolv.conf"} {
		sys.files[p] = ""
	}
	sys.dirs["/run/cradle/pods/p1/shm"] = true
	return Input{
		ID:         "c1",
		SandboxID:  "p1",
		Config:     containerConfig(),
		Sandbox:    podConfig(),
		Image:      ocispec.ImageConfig{Cmd: []string{"nginx", "-g", "daemon off;"}, Env: []string{"PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.27"}},
		RootfsPath: "/var/lib/cradle/containers/c1/rootfs",
		RootFS:     testRootFS(),
		Namespaces: SandboxNamespaces{Network: "/run/cradle/ns/p1/net", IPC: "/run/cradle/ns/p1/ipc", UTS: "/run/cradle/ns/p1/uts"},
		Files: SandboxFiles{
			Hostname: "/run/cradle/pods/p1/hostname", Hosts: "/run/cradle/pods/p1/hosts",
			ResolvConf: "/run/cradle/pods/p1/resolv.conf", ShmPath: "/run/cradle/pods/p1/shm",
		},
		Node: &Node{Host: testHost(), System: sys, Runtimes: map[string]RuntimeFeatures{"": {RecursiveReadOnly: true}}},
	}, sys
}

func secCtx(in *Input) *runtimeapi.LinuxContainerSecurityContext {
	return in.Config.Linux.SecurityContext
}

// wantErr checks err's kind and that its message names what went wrong.
func wantErr(t *testing.T, err, kind error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v containing %q", kind, substr)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("error %q is not of kind %v", err, kind)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not contain %q", err, substr)
	}
}

func mustBuild(t *testing.T, in Input) *specs.Spec {
	t.Helper()
	s, err := Build(in)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return s
}
