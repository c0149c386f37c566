package spec

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// FuzzBuild builds the spec of an arbitrary CreateContainer request (its
// config and sandbox config) on the fake host of the tests. The CRI fuzz
// targets cannot get here (no pod is ever ready there), and here is where
// most of a container's validation lives. Build must not panic, and every
// error must carry a kind, which becomes CreateContainer's code: an error
// without one reaches kubelet as Unknown.
//
//	go test -run '^$' -fuzz '^FuzzBuild$' -fuzztime 5m ./internal/spec
func FuzzBuild(f *testing.F) {
	seed := func(edit func(in *Input)) {
		in, _ := testInput()
		if edit != nil {
			edit(&in)
		}
		b, err := proto.Marshal(&runtimeapi.CreateContainerRequest{Config: in.Config, SandboxConfig: in.Sandbox})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(nil)
	seed(func(in *Input) {
		in.Config.Command, in.Config.Args = []string{"/bin/sh", "-c"}, []string{"sleep 1"}
		in.Config.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b")}}
		in.Config.WorkingDir = "/srv"
		in.Config.Mounts = []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/run/cradle/pods/p1/shm", Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
			{ContainerPath: "/ro", HostPath: "/run/cradle/pods/p1/shm", Readonly: true, RecursiveReadOnly: true},
		}
		in.Config.Devices = []*runtimeapi.Device{{ContainerPath: "/dev/fuse", HostPath: "/dev/fuse", Permissions: "rwm"}}
		sc := secCtx(in)
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}}
		sc.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
		sc.SupplementalGroups = []int64{29}
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
		sc.MaskedPaths, sc.ReadonlyPaths = []string{"/proc/kcore"}, []string{"/proc/sys"}
		in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512,
			MemoryLimitInBytes: 64 << 20, OomScoreAdj: 1000, CpusetCpus: "0", HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}}}
	})
	seed(func(in *Input) {
		in.Sandbox.Linux.SecurityContext.Privileged = true
		secCtx(in).Privileged = true
		secCtx(in).RunAsUsername = "web"
		in.Sandbox.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req runtimeapi.CreateContainerRequest
		if proto.Unmarshal(data, &req) != nil || req.Config == nil || req.SandboxConfig == nil {
			return
		}
		in, _ := testInput()
		in.Config, in.Sandbox = req.Config, req.SandboxConfig
		_, err := Build(in)
		if err != nil && errdefs.Code(err) == codes.Unknown {
			t.Fatalf("Build failed without an error kind (CreateContainer would answer Unknown): %v", err)
		}
		if r := req.Config.GetLinux().GetResources(); r != nil {
			if _, err := Resources(r, in.Node.Host); err != nil && errdefs.Code(err) == codes.Unknown {
				t.Fatalf("Resources failed without an error kind (UpdateContainerResources would answer Unknown): %v", err)
			}
		}
	})
}
