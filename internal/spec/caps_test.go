package spec

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestCapNamesMatchKernelNumbers(t *testing.T) {
	// Spot checks against linux/capability.h: a shifted table would grant
	// the wrong capabilities.
	for name, bit := range map[string]int{
		"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21,
		"CAP_SYS_RESOURCE": 24, "CAP_MKNOD": 27, "CAP_SETFCAP": 31, "CAP_BPF": 39,
		"CAP_CHECKPOINT_RESTORE": 40,
	} {
		if capIndex[name] != bit {
			t.Errorf("%s = %d, want %d", name, capIndex[name], bit)
		}
	}
	if len(capNames) != 41 {
		t.Errorf("%d capabilities, want 41", len(capNames))
	}
}

func caps(add, drop, ambient []string) *runtimeapi.LinuxContainerSecurityContext {
	return &runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{
		AddCapabilities: add, DropCapabilities: drop, AddAmbientCapabilities: ambient,
	}}
}

func without(set []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(set), func(c string) bool { return slices.Contains(drop, c) })
}

func TestBuildCapabilities(t *testing.T) {
	host := testHost().Capabilities
	defaults := setOf(DefaultCapabilities).names()
	cases := []struct {
		name        string
		sc          *runtimeapi.LinuxContainerSecurityContext
		want        []string
		wantAmbient []string
	}{
		{"no context", nil, defaults, nil},
		{"add by short name", caps([]string{"NET_ADMIN"}, nil, nil), setOf(append([]string{"CAP_NET_ADMIN"}, defaults...)).names(), nil},
		{"add lower case with prefix", caps([]string{"cap_sys_ptrace"}, nil, nil), setOf(append([]string{"CAP_SYS_PTRACE"}, defaults...)).names(), nil},
		{"drop", caps(nil, []string{"NET_RAW", "CAP_MKNOD"}, nil), without(defaults, "CAP_NET_RAW", "CAP_MKNOD"), nil},
		{"drop wins over add", caps([]string{"NET_ADMIN"}, []string{"NET_ADMIN"}, nil), defaults, nil},
		{"add ALL", caps([]string{"ALL"}, nil, nil), host, nil},
		{"add all, drop one", caps([]string{"all"}, []string{"CHOWN"}, nil), without(host, "CAP_CHOWN"), nil},
		{"drop ALL", caps(nil, []string{"ALL"}, nil), []string{}, nil},
		{"drop ALL, add one", caps([]string{"NET_BIND_SERVICE"}, []string{"ALL"}, nil), []string{"CAP_NET_BIND_SERVICE"}, nil},
		{"ambient joins every set", caps(nil, []string{"ALL"}, []string{"NET_BIND_SERVICE"}),
			[]string{"CAP_NET_BIND_SERVICE"}, []string{"CAP_NET_BIND_SERVICE"}},
		{"ambient also in add", caps([]string{"NET_ADMIN"}, nil, []string{"NET_ADMIN"}),
			setOf(append([]string{"CAP_NET_ADMIN"}, defaults...)).names(), []string{"CAP_NET_ADMIN"}},
		{"drop removes ambient", caps(nil, []string{"NET_ADMIN"}, []string{"NET_ADMIN"}), defaults, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := buildCapabilities(c.sc, host)
			if err != nil {
				t.Fatal(err)
			}
			for set, v := range map[string][]string{"bounding": got.Bounding, "effective": got.Effective, "permitted": got.Permitted} {
				if !cmp.Equal(v, c.want) {
					t.Errorf("%s = %v, want %v", set, v, c.want)
				}
			}
			if !cmp.Equal(got.Ambient, c.wantAmbient) || !cmp.Equal(got.Inheritable, c.wantAmbient) {
				t.Errorf("ambient %v / inheritable %v, want both %v", got.Ambient, got.Inheritable, c.wantAmbient)
			}
		})
	}
}

func TestBuildCapabilitiesErrors(t *testing.T) {
	host := testHost().Capabilities
	for _, c := range []struct {
		sc     *runtimeapi.LinuxContainerSecurityContext
		kind   error
		substr string
	}{
		{caps([]string{"FLY"}, nil, nil), errdefs.ErrInvalidArgument, `unknown capability "FLY"`},
		{caps(nil, []string{"CAP_FLY"}, nil), errdefs.ErrInvalidArgument, `unknown capability "CAP_FLY"`},
		{caps(nil, nil, []string{""}), errdefs.ErrInvalidArgument, `unknown capability ""`},
		// This node's runtime lacks CAP_SYS_RESOURCE; runc would fail later.
		{caps([]string{"SYS_RESOURCE"}, nil, nil), errdefs.ErrFailedPrecondition, "CAP_SYS_RESOURCE is not in the runtime's bounding set"},
		{caps(nil, nil, []string{"SYS_RESOURCE"}), errdefs.ErrFailedPrecondition, "CAP_SYS_RESOURCE"},
	} {
		_, err := buildCapabilities(c.sc, host)
		wantErr(t, err, c.kind, c.substr)
	}
}

func TestCapabilitiesLimitedByHost(t *testing.T) {
	// Defaults the runtime itself lacks are left out rather than failing
	// every container; privileged gets exactly the host's set.
	host := without(testHost().Capabilities, "CAP_MKNOD")
	got, err := buildCapabilities(nil, host)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got.Bounding, "CAP_MKNOD") {
		t.Fatalf("bounding %v has a capability the host lacks", got.Bounding)
	}
	priv, err := buildCapabilities(&runtimeapi.LinuxContainerSecurityContext{Privileged: true, Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}}, host)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(priv.Bounding, host) || priv.Ambient != nil || priv.Inheritable != nil {
		t.Fatalf("privileged caps = %+v, want the host's set only", priv)
	}
}

func TestCapabilitySetsAreIndependent(t *testing.T) {
	got, err := buildCapabilities(nil, testHost().Capabilities)
	if err != nil {
		t.Fatal(err)
	}
	got.Effective[0] = "CHANGED"
	if got.Bounding[0] == "CHANGED" || got.Permitted[0] == "CHANGED" {
		t.Fatal("capability sets share one backing array")
	}
}
