package spec

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Legacy profile strings of the deprecated *_profile_path fields.
const (
	profileRuntimeDefault = "runtime/default"
	profileDockerDefault  = "docker/default"
	profileUnconfined     = "unconfined"
	profileLocalhost      = "localhost/"
)

// securityProfile returns the typed profile, falling back to the deprecated
// string field. Nil means none was asked for.
func securityProfile(kind string, typed *runtimeapi.SecurityProfile, legacy string) (*runtimeapi.SecurityProfile, error) {
	if typed != nil {
		if _, ok := runtimeapi.SecurityProfile_ProfileType_name[int32(typed.GetProfileType())]; !ok {
			return nil, errdefs.InvalidArgument("unknown %s profile type %d", kind, typed.GetProfileType())
		}
		if typed.GetProfileType() != runtimeapi.SecurityProfile_Localhost && typed.GetLocalhostRef() != "" {
			return nil, errdefs.InvalidArgument("%s localhost_ref is set but the profile type is %s", kind, typed.GetProfileType())
		}
		if typed.GetProfileType() == runtimeapi.SecurityProfile_Localhost && typed.GetLocalhostRef() == "" {
			return nil, errdefs.InvalidArgument("%s profile type Localhost needs a localhost_ref", kind)
		}
		return typed, nil
	}
	switch {
	case legacy == "":
		return nil, nil
	case legacy == profileRuntimeDefault || legacy == profileDockerDefault:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case legacy == profileUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(legacy, profileLocalhost) && len(legacy) > len(profileLocalhost):
		return &runtimeapi.SecurityProfile{
			ProfileType:  runtimeapi.SecurityProfile_Localhost,
			LocalhostRef: strings.TrimPrefix(legacy, profileLocalhost),
		}, nil
	default:
		return nil, errdefs.InvalidArgument("unknown %s profile %q", kind, legacy)
	}
}

// seccompProfile picks the filter. No profile at all means unconfined, as
// api.proto defines it; kubelet asks for RuntimeDefault explicitly when
// the cluster wants it. The default profile is Docker's, kept up to date in
// moby/profiles; its rules depend on the capabilities, so those come first.
func seccompProfile(sc *runtimeapi.LinuxContainerSecurityContext, caps *specs.LinuxCapabilities, host HostFacts, sys System) (*specs.LinuxSeccomp, error) {
	sp, err := securityProfile("seccomp", sc.GetSeccomp(), sc.GetSeccompProfilePath())
	if err != nil {
		return nil, err
	}
	if sc.GetPrivileged() || sp == nil || sp.GetProfileType() == runtimeapi.SecurityProfile_Unconfined {
		return nil, nil
	}
	if !host.Seccomp {
		return nil, errdefs.FailedPrecondition("seccomp profile %s requested but this kernel has no seccomp", sp.GetProfileType())
	}
	return loadSeccomp(sp, caps, sys)
}

func loadSeccomp(sp *runtimeapi.SecurityProfile, caps *specs.LinuxCapabilities, sys System) (*specs.LinuxSeccomp, error) {
	ref := &specs.Spec{Process: &specs.Process{Capabilities: caps}}
	if sp.GetProfileType() == runtimeapi.SecurityProfile_RuntimeDefault {
		p, err := seccomp.GetDefaultProfile(ref)
		if err != nil {
			return nil, errdefs.FailedPrecondition("build the default seccomp profile: %v", err)
		}
		return p, nil
	}
	// Trim the legacy prefix should a client put it in the typed field.
	file := strings.TrimPrefix(sp.GetLocalhostRef(), profileLocalhost)
	if !filepath.IsAbs(file) {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %q is not an absolute path", file)
	}
	body, err := sys.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.InvalidArgument("seccomp localhost profile %s does not exist on this node", file)
	}
	if err != nil {
		return nil, errdefs.FailedPrecondition("read seccomp profile %s: %v", file, err)
	}
	// LoadProfile takes both the plain OCI form and Docker's form with
	// per-architecture and per-capability rules.
	p, err := seccomp.LoadProfile(string(body), ref)
	if err != nil {
		return nil, errdefs.InvalidArgument("seccomp profile %s: %v", file, err)
	}
	if p == nil {
		return nil, errdefs.InvalidArgument("seccomp profile %s has no defaultAction and no rules", file)
	}
	return p, nil
}
