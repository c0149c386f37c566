package spec

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestProtectedPaths(t *testing.T) {
	masked, readonly, err := protectedPaths(nil)
	if err != nil || !cmp.Equal(masked, DefaultMaskedPaths) || !cmp.Equal(readonly, DefaultReadonlyPaths) {
		t.Fatalf("defaults: %v %v %v", masked, readonly, err)
	}
	masked[0] = "/changed"
	if DefaultMaskedPaths[0] == "/changed" {
		t.Fatal("the spec shares the package defaults")
	}

	sc := &runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/proc/kcore"}, ReadonlyPaths: []string{}}
	masked, readonly, err = protectedPaths(sc)
	if err != nil || !cmp.Equal(masked, []string{"/proc/kcore"}) || len(readonly) != 0 {
		t.Fatalf("request lists: %v %v %v", masked, readonly, err)
	}

	sc.Privileged = true
	if masked, readonly, err = protectedPaths(sc); masked != nil || readonly != nil || err != nil {
		t.Fatalf("privileged: %v %v %v", masked, readonly, err)
	}

	_, _, err = protectedPaths(&runtimeapi.LinuxContainerSecurityContext{ReadonlyPaths: []string{"proc/sys"}})
	wantErr(t, err, errdefs.ErrInvalidArgument, `"proc/sys" is not absolute`)
}

func TestAppArmor(t *testing.T) {
	sys := newFakeSystem()
	sys.files[appArmorProfiles] = "cradle-default (enforce)\nmy-app (enforce)\nmy-app-debug (complain)\n"
	enabled := &Node{Host: testHost(), AppArmorProfile: "cradle-default"}
	enabled.Host.AppArmor = true
	disabled := &Node{Host: testHost(), AppArmorProfile: "cradle-default"}

	cases := []struct {
		name string
		node *Node
		sc   *runtimeapi.LinuxContainerSecurityContext
		want string
	}{
		{"unset uses the default", enabled, nil, "cradle-default"},
		{"runtime default", enabled, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")}, "cradle-default"},
		{"legacy runtime default", enabled, &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, "cradle-default"},
		{"unconfined", enabled, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Unconfined, "")}, ""},
		{"localhost", enabled, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Localhost, "my-app")}, "my-app"},
		{"localhost with prefix", enabled, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Localhost, "localhost/my-app")}, "my-app"},
		{"legacy localhost", enabled, &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "localhost/my-app-debug"}, "my-app-debug"},
		{"privileged", enabled, &runtimeapi.LinuxContainerSecurityContext{Privileged: true}, ""},
		{"no default loaded", &Node{Host: enabled.Host}, nil, ""},
		{"disabled: unset", disabled, nil, ""},
		{"disabled: runtime default", disabled, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_RuntimeDefault, "")}, ""},
		{"disabled: unconfined", disabled, &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "unconfined"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := apparmorProfile(c.sc, c.node, sys)
			if err != nil || got != c.want {
				t.Fatalf("profile %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestAppArmorErrors(t *testing.T) {
	sys := newFakeSystem()
	sys.files[appArmorProfiles] = "my-app (enforce)\n"
	enabled := &Node{Host: testHost()}
	enabled.Host.AppArmor = true
	disabled := &Node{Host: testHost()}
	broken := newFakeSystem()
	broken.errs[appArmorProfiles] = errors.New("securityfs not mounted")

	cases := []struct {
		name   string
		node   *Node
		sys    System
		sc     *runtimeapi.LinuxContainerSecurityContext
		kind   error
		substr string
	}{
		{"not loaded", enabled, sys, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Localhost, "my-ap")}, errdefs.ErrFailedPrecondition, `"my-ap" is not loaded`},
		{"cannot list", enabled, broken, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Localhost, "my-app")}, errdefs.ErrFailedPrecondition, "securityfs"},
		{"named profile without AppArmor", disabled, sys, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(runtimeapi.SecurityProfile_Localhost, "my-app")}, errdefs.ErrFailedPrecondition, "AppArmor is not enabled"},
		{"legacy named profile without AppArmor", disabled, sys, &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "localhost/my-app"}, errdefs.ErrFailedPrecondition, "not enabled"},
		{"unknown type", disabled, sys, &runtimeapi.LinuxContainerSecurityContext{Apparmor: profile(4, "")}, errdefs.ErrInvalidArgument, "unknown apparmor profile type 4"},
		{"legacy garbage", enabled, sys, &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "my-app"}, errdefs.ErrInvalidArgument, `unknown apparmor profile "my-app"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := apparmorProfile(c.sc, c.node, c.sys)
			wantErr(t, err, c.kind, c.substr)
		})
	}
}

func TestAppArmorThroughBuild(t *testing.T) {
	in, _ := testInput()
	in.Node.Host.AppArmor = true
	in.Node.AppArmorProfile = "cradle-default"
	if got := mustBuild(t, in).Process.ApparmorProfile; got != "cradle-default" {
		t.Fatalf("apparmor profile = %q", got)
	}
}
