package spec

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// capNames lists Linux capabilities by number (linux/capability.h).
var capNames = [...]string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

var capIndex = func() map[string]int {
	m := make(map[string]int, len(capNames))
	for i, n := range capNames {
		m[n] = i
	}
	return m
}()

// DefaultCapabilities is the set a non-privileged container starts with:
// the same as containerd's and Docker's, so workloads behave alike.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

type capSet uint64

func capsFromMask(mask uint64) []string {
	return capSet(mask).names()
}

func (s capSet) names() []string {
	out := []string{}
	for i, n := range capNames {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func setOf(names []string) capSet {
	var s capSet
	for _, n := range names {
		if i, ok := capIndex[n]; ok {
			s |= 1 << i
		}
	}
	return s
}

// parseCap accepts CRI spellings: "NET_ADMIN", "net_admin", "CAP_NET_ADMIN".
func parseCap(name string) (capSet, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	i, ok := capIndex[n]
	if !ok {
		return 0, errdefs.InvalidArgument("unknown capability %q", name)
	}
	return 1 << i, nil
}

func isAll(name string) bool { return strings.EqualFold(strings.TrimSpace(name), "ALL") }

// buildCapabilities applies the security context to the default set.
// "ALL" is applied before individual names, so add ALL + drop CHOWN is
// everything but CHOWN and drop ALL + add NET_ADMIN is only NET_ADMIN.
// Inheritable holds only ambient capabilities: anything more would let
// file capabilities of executed programs gain them (CVE-2022-24769).
func buildCapabilities(sc *runtimeapi.LinuxContainerSecurityContext, host []string) (*specs.LinuxCapabilities, error) {
	hostSet := setOf(host)
	if sc.GetPrivileged() {
		return &specs.LinuxCapabilities{Bounding: hostSet.names(), Effective: hostSet.names(), Permitted: hostSet.names()}, nil
	}
	set := setOf(DefaultCapabilities) & hostSet
	var ambient capSet
	c := sc.GetCapabilities()

	add := func(names []string, to *capSet) error {
		for _, n := range names {
			if isAll(n) {
				continue
			}
			bit, err := parseCap(n)
			if err != nil {
				return err
			}
			if bit&hostSet == 0 {
				return errdefs.FailedPrecondition("capability %s is not in the runtime's bounding set on this node", bit.names()[0])
			}
			*to |= bit
		}
		return nil
	}
	for _, n := range c.GetAddCapabilities() {
		if isAll(n) {
			set = hostSet
		}
	}
	for _, n := range c.GetDropCapabilities() {
		if isAll(n) {
			set = 0
		}
	}
	if err := add(c.GetAddCapabilities(), &set); err != nil {
		return nil, err
	}
	for _, n := range c.GetAddAmbientCapabilities() {
		if isAll(n) {
			ambient = hostSet
		}
	}
	if err := add(c.GetAddAmbientCapabilities(), &ambient); err != nil {
		return nil, err
	}
	set |= ambient
	for _, n := range c.GetDropCapabilities() {
		if isAll(n) {
			continue
		}
		bit, err := parseCap(n)
		if err != nil {
			return nil, err
		}
		set &^= bit
		ambient &^= bit
	}
	// Separate slices: a caller editing one set must not change another.
	caps := &specs.LinuxCapabilities{Bounding: set.names(), Effective: set.names(), Permitted: set.names()}
	if ambient != 0 {
		caps.Ambient = ambient.names()
		caps.Inheritable = ambient.names()
	}
	return caps, nil
}
