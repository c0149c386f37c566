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

func profile(t runtimeapi.SecurityProfile_ProfileType, ref string) *runtimeapi.SecurityProfile {
	return &runtimeapi.SecurityProfile{ProfileType: t, LocalhostRef: ref}
}

// allowed reports whether the filter has an ALLOW rule naming call.
func allowed(p *specs.LinuxSeccomp, call string) bool {
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, call) && len(r.Args) == 0 {
			return true
		}
	}
	return false
}

func TestSeccompRuntimeDefault(t *testing.T) {
	in, _ := testInput()
	secCtx(&in).Seccomp = profile(runtimeapi.SecurityProfile_RuntimeDefault, "")
	p := mustBuild(t, in).Linux.Seccomp
	if p == nil {
		t.Fatal("RuntimeDefault gave no filter")
	}
	if p.DefaultAction != specs.ActErrno || len(p.Architectures) == 0 {
		t.Fatalf("default action %q, architectures %v", p.DefaultAction, p.Architectures)
	}
	if !allowed(p, "read") || !allowed(p, "execve") {
		t.Fatal("the default profile blocks read or execve")
	}
	if allowed(p, "mount") || allowed(p, "kexec_load") {
		t.Fatal("the default profile allows mount or kexec_load without CAP_SYS_ADMIN")
	}
	// The profile follows the capabilities: SYS_ADMIN opens mount.
	secCtx(&in).Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
	if p := mustBuild(t, in).Linux.Seccomp; !allowed(p, "mount") {
		t.Fatal("CAP_SYS_ADMIN did not open mount in the default profile")
	}
}

func TestSeccompNoFilter(t *testing.T) {
	for name, sc := range map[string]*runtimeapi.LinuxContainerSecurityContext{
		"unset":                {},
		"unconfined":           {Seccomp: profile(runtimeapi.SecurityProfile_Unconfined, "")},
		"legacy unconfined":    {SeccompProfilePath: "unconfined"},
		"privileged":           {Privileged: true, Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")},
		"privileged localhost": {Privileged: true, Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/missing.json")},
	} {
		p, err := seccompProfile(sc, &specs.LinuxCapabilities{}, testHost(), newFakeSystem())
		if err != nil || p != nil {
			t.Errorf("%s: filter %v, err %v; want none", name, p != nil, err)
		}
	}
	// Without kernel seccomp, unconfined still works.
	host := testHost()
	host.Seccomp = false
	if p, err := seccompProfile(&runtimeapi.LinuxContainerSecurityContext{}, nil, host, newFakeSystem()); p != nil || err != nil {
		t.Fatalf("no seccomp kernel, no request: %v %v", p, err)
	}
}

const plainProfile = `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64"],
 "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`

// Docker's form: a rule only for containers holding CAP_SYS_ADMIN.
const dockerProfile = `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
 {"names":["read"],"action":"SCMP_ACT_ALLOW"},
 {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`

func TestSeccompLocalhost(t *testing.T) {
	sys := newFakeSystem()
	sys.files["/etc/profiles/plain.json"] = plainProfile
	sys.files["/etc/profiles/docker.json"] = dockerProfile
	errno := uint(1)
	want := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &errno,
		Architectures:   []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}},
		},
	}
	for name, sc := range map[string]*runtimeapi.LinuxContainerSecurityContext{
		"typed":                {Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/etc/profiles/plain.json")},
		"typed with prefix":    {Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "localhost//etc/profiles/plain.json")},
		"legacy":               {SeccompProfilePath: "localhost//etc/profiles/plain.json"},
		"typed wins over path": {Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/etc/profiles/plain.json"), SeccompProfilePath: "unconfined"},
	} {
		got, err := seccompProfile(sc, &specs.LinuxCapabilities{}, testHost(), sys)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s (-want +got):\n%s", name, diff)
		}
	}

	sc := &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/etc/profiles/docker.json")}
	got, err := seccompProfile(sc, &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}}, testHost(), sys)
	if err != nil {
		t.Fatal(err)
	}
	if !allowed(got, "read") || allowed(got, "mount") {
		t.Fatalf("docker-form rules not filtered by capability: %+v", got.Syscalls)
	}
	got, _ = seccompProfile(sc, &specs.LinuxCapabilities{Bounding: []string{"CAP_SYS_ADMIN"}}, testHost(), sys)
	if !allowed(got, "mount") {
		t.Fatal("docker-form rule for CAP_SYS_ADMIN missing")
	}
}

func TestSeccompErrors(t *testing.T) {
	sys := newFakeSystem()
	sys.files["/p/bad.json"] = `{"defaultAction":`
	sys.files["/p/empty.json"] = `{}`
	sys.files["/p/both.json"] = `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}`
	sys.errs["/p/locked.json"] = errors.New("permission denied")
	noSeccomp := testHost()
	noSeccomp.Seccomp = false
	cases := []struct {
		name   string
		sc     *runtimeapi.LinuxContainerSecurityContext
		host   HostFacts
		kind   error
		substr string
	}{
		{"unknown type", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(9, "")}, testHost(), errdefs.ErrInvalidArgument, "unknown seccomp profile type 9"},
		{"unknown type even if privileged", &runtimeapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: profile(9, "")}, testHost(), errdefs.ErrInvalidArgument, "unknown seccomp profile type"},
		{"ref without localhost", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, "/x.json")}, testHost(), errdefs.ErrInvalidArgument, "localhost_ref is set"},
		{"localhost without ref", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "")}, testHost(), errdefs.ErrInvalidArgument, "needs a localhost_ref"},
		{"legacy garbage", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "strict"}, testHost(), errdefs.ErrInvalidArgument, `unknown seccomp profile "strict"`},
		{"legacy bare prefix", &runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/"}, testHost(), errdefs.ErrInvalidArgument, "unknown seccomp profile"},
		{"relative file", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "profiles/x.json")}, testHost(), errdefs.ErrInvalidArgument, "not an absolute path"},
		{"missing file", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/p/none.json")}, testHost(), errdefs.ErrInvalidArgument, "/p/none.json does not exist"},
		{"unreadable file", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/p/locked.json")}, testHost(), errdefs.ErrFailedPrecondition, "permission denied"},
		{"bad json", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/p/bad.json")}, testHost(), errdefs.ErrInvalidArgument, "/p/bad.json"},
		{"empty profile", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/p/empty.json")}, testHost(), errdefs.ErrInvalidArgument, "no defaultAction"},
		{"contradictory profile", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_Localhost, "/p/both.json")}, testHost(), errdefs.ErrInvalidArgument, "archMap"},
		{"no kernel seccomp", &runtimeapi.LinuxContainerSecurityContext{Seccomp: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")}, noSeccomp, errdefs.ErrFailedPrecondition, "no seccomp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := seccompProfile(c.sc, &specs.LinuxCapabilities{}, c.host, sys)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}
