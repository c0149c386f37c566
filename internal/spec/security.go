package spec

import (
	"bufio"
	"bytes"
	"path"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Paths hidden from and made read-only for non-privileged containers when
// the request gives none: kernel interfaces that leak host data or let a
// container reconfigure the host. The same lists as containerd and kubelet.
var (
	DefaultMaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
		"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	DefaultReadonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
	}
)

// protectedPaths applies the request's lists when present. Over gRPC an
// empty list arrives as nil, so "mask nothing" (procMount Unmasked) cannot
// be told from "not set"; the safe reading wins. Unmasked needs a user
// namespace in Kubernetes, which cradle does not offer yet.
func protectedPaths(sc *runtimeapi.LinuxContainerSecurityContext) (masked, readonly []string, err error) {
	if sc.GetPrivileged() {
		return nil, nil, nil
	}
	masked, readonly = DefaultMaskedPaths, DefaultReadonlyPaths
	if sc.GetMaskedPaths() != nil {
		masked = sc.GetMaskedPaths()
	}
	if sc.GetReadonlyPaths() != nil {
		readonly = sc.GetReadonlyPaths()
	}
	for _, p := range append(append([]string{}, masked...), readonly...) {
		if !path.IsAbs(p) {
			return nil, nil, errdefs.InvalidArgument("masked or readonly path %q is not absolute", p)
		}
	}
	return append([]string{}, masked...), append([]string{}, readonly...), nil
}

const appArmorProfiles = "/sys/kernel/security/apparmor/profiles"

// apparmorProfile returns the profile name for the process. On a node
// without AppArmor, RuntimeDefault means no profile (as with Docker), but a
// named profile cannot be honoured, so it fails.
func apparmorProfile(sc *runtimeapi.LinuxContainerSecurityContext, node *Node, sys System) (string, error) {
	sp, err := securityProfile("apparmor", sc.GetApparmor(), sc.GetApparmorProfile())
	if err != nil {
		return "", err
	}
	t := sp.GetProfileType() // nil reads as RuntimeDefault, kubelet's default
	if sp == nil {
		t = runtimeapi.SecurityProfile_RuntimeDefault
	}
	if !node.Host.AppArmor {
		if t == runtimeapi.SecurityProfile_Localhost {
			return "", errdefs.FailedPrecondition("AppArmor profile %q requested but AppArmor is not enabled on this node", sp.GetLocalhostRef())
		}
		return "", nil
	}
	if sc.GetPrivileged() {
		return "", nil
	}
	switch t {
	case runtimeapi.SecurityProfile_Unconfined:
		return "", nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return node.AppArmorProfile, nil
	}
	name := strings.TrimPrefix(sp.GetLocalhostRef(), profileLocalhost)
	loaded, err := sys.ReadFile(appArmorProfiles)
	if err != nil {
		return "", errdefs.FailedPrecondition("read loaded AppArmor profiles: %v", err)
	}
	// Lines read "name (enforce)".
	sc2 := bufio.NewScanner(bytes.NewReader(loaded))
	for sc2.Scan() {
		if strings.HasPrefix(sc2.Text(), name+" (") {
			return name, nil
		}
	}
	return "", errdefs.FailedPrecondition("AppArmor profile %q is not loaded on this node", name)
}
