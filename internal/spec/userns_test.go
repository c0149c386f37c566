package spec

import (
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podUserns(host uint32) *runtimeapi.UserNamespace {
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: host, Length: 65536}}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}
}

const testUserns = "/run/cradle/pods/p1/userns/user"

func TestUserNamespaceJoinedWithMappings(t *testing.T) {
	in, _ := testInput()
	in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(1000)
	// A container config without userns options follows the pod.
	secCtx(&in).NamespaceOptions.UsernsOptions = nil
	in.Namespaces.User = testUserns
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 65536}}
	if !reflect.DeepEqual(s.Linux.UIDMappings, want) || !reflect.DeepEqual(s.Linux.GIDMappings, want) {
		t.Errorf("mappings = %v / %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	if !hasNamespace(s.Linux.Namespaces, specs.UserNamespace, testUserns) {
		t.Errorf("namespaces = %v, want the pod's user namespace by path", s.Linux.Namespaces)
	}
}

func TestHostUserNamespaceHasNoMappings(t *testing.T) {
	in, _ := testInput()
	in.Sandbox.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	secCtx(&in).NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	in.Namespaces.User = testUserns // ignored for NODE
	s, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.UIDMappings != nil || s.Linux.GIDMappings != nil {
		t.Errorf("mappings for the host's user namespace: %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			t.Errorf("user namespace in %v", s.Linux.Namespaces)
		}
	}
}

func TestSandboxInitJoinsUserNamespace(t *testing.T) {
	in, _ := sandboxInput()
	in.Config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserns(5000)
	in.Namespaces.User = testUserns
	s, err := BuildSandbox(in)
	if err != nil {
		t.Fatal(err)
	}
	if !hasNamespace(s.Linux.Namespaces, specs.UserNamespace, testUserns) || len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0].HostID != 5000 {
		t.Errorf("init spec: namespaces %v, uid mappings %v", s.Linux.Namespaces, s.Linux.UIDMappings)
	}
}

func hasNamespace(list []specs.LinuxNamespace, typ specs.LinuxNamespaceType, path string) bool {
	for _, ns := range list {
		if ns.Type == typ && ns.Path == path {
			return true
		}
	}
	return false
}
