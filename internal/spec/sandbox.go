package spec

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// SandboxInput describes a pod's init process. cradle pins pod namespaces
// without any process; only a pod that shares one PID namespace
// (namespace_options.pid = POD) needs a PID 1 to own it and reap orphans.
type SandboxInput struct {
	ID     string
	Config *runtimeapi.PodSandboxConfig
	// RootfsPath is an empty directory owned by the caller. It becomes the
	// init's read-only root, holding nothing but the mount points the
	// runtime creates: the init needs no files and sees none of the host.
	RootfsPath string
	// InitPath is the host's catatonit, a static binary, bind-mounted
	// read-only at /catatonit. Empty means /usr/bin/catatonit.
	InitPath string
	// Namespaces: the network, IPC and UTS paths are joined as for
	// containers; PID is ignored, the init creates the pod's PID namespace.
	Namespaces SandboxNamespaces
	Node       *Node
	// Sandboxed: the pod runs on a sandboxed runtime (gVisor, Kata), which
	// needs this container (its "pause") whatever the PID mode: it makes
	// the sandbox the pod's containers join.
	Sandboxed bool
}

// DefaultInitPath is where Debian's catatonit package installs it.
const DefaultInitPath = "/usr/bin/catatonit"

const (
	initInContainer = "/catatonit"
	// The init runs as the pause image's user: it needs no privilege at
	// all, and reaping children needs none.
	sandboxUser = 65535
	// Below the containers' scores: if it dies, every process in the pod's
	// PID namespace dies with it.
	sandboxOOMScoreAdj = -998
	// The smallest weight; the init only sleeps and reaps.
	sandboxCPUShares = 2
)

// BuildSandbox returns the spec of a pod's init process: catatonit in pause
// mode as PID 1 of a new PID namespace, joined to the pod's other
// namespaces, with no capabilities, no new privileges and the default
// seccomp profile.
func BuildSandbox(in SandboxInput) (*specs.Spec, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	node, sys := in.Node, in.Node.system()
	sc := in.Config.GetLinux().GetSecurityContext()
	opts := sc.GetNamespaceOptions()
	if opts.GetPid() != runtimeapi.NamespaceMode_POD && !in.Sandboxed {
		return nil, errdefs.InvalidArgument("a sandbox init process is only for pods that share a PID namespace, not pid mode %s", opts.GetPid())
	}
	initPath := in.InitPath
	if initPath == "" {
		initPath = DefaultInitPath
	}
	if _, err := sys.Stat(initPath); err != nil {
		return nil, errdefs.FailedPrecondition("sandbox init %s: %v", initPath, err)
	}
	user, err := sandboxProcessUser(sc)
	if err != nil {
		return nil, err
	}
	// The init is PID 1 of a new PID namespace; everything else is joined
	// exactly as the pod's containers join it.
	initOpts := &runtimeapi.NamespaceOption{
		Network: opts.GetNetwork(), Ipc: opts.GetIpc(), Pid: runtimeapi.NamespaceMode_CONTAINER,
		UsernsOptions: opts.GetUsernsOptions(),
	}
	ctr := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: initOpts}
	podOpts := &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: initOpts},
	}}
	ns, err := containerNamespaces(podOpts, ctr, in.Namespaces, "", node.Host)
	if err != nil {
		return nil, err
	}
	sysctls, err := buildSysctls(in.Config.GetLinux().GetSysctls(), ns, node)
	if err != nil {
		return nil, err
	}
	cgroups, err := cgroupsPath(node, in.Config.GetLinux().GetCgroupParent(), in.ID)
	if err != nil {
		return nil, err
	}
	rlimits, err := checkRlimits(node.Rlimits)
	if err != nil {
		return nil, err
	}
	caps := &specs.LinuxCapabilities{}
	adj := max(sandboxOOMScoreAdj, node.Host.OOMScoreAdj)
	shares := uint64(sandboxCPUShares)
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User:            user,
			Args:            []string{initInContainer, "-P"},
			Cwd:             "/",
			Capabilities:    caps,
			Rlimits:         rlimits,
			NoNewPrivileges: true,
			OOMScoreAdj:     &adj,
		},
		Root: &specs.Root{Path: in.RootfsPath, Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "strictatime", "mode=755", "size=64k"}},
			bind(initPath, initInContainer, "rprivate", "ro", "nosuid", "nodev"),
		},
		Annotations: sandboxAnnotations(in.ID, in.Config),
		Linux: &specs.Linux{
			Sysctl: sysctls,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				CPU:     &specs.LinuxCPU{Shares: &shares},
			},
			CgroupsPath:   cgroups,
			Namespaces:    ns.list,
			MaskedPaths:   append([]string{}, DefaultMaskedPaths...),
			ReadonlyPaths: append([]string{}, DefaultReadonlyPaths...),
		},
	}
	if ns.ownUTS() {
		s.Hostname = in.Config.GetHostname()
	}
	ns.user.apply(s)
	if node.Host.AppArmor {
		s.Process.ApparmorProfile = node.AppArmorProfile
	}
	if node.Host.Seccomp {
		p, err := loadSeccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, caps, sys)
		if err != nil {
			return nil, err
		}
		s.Linux.Seccomp = p
	}
	return s, nil
}

func (in *SandboxInput) validate() error {
	switch {
	case in.ID == "":
		return errdefs.InvalidArgument("sandbox ID is empty")
	case in.Config == nil:
		return errdefs.InvalidArgument("sandbox config is missing")
	case !filepath.IsAbs(in.RootfsPath):
		return errdefs.InvalidArgument("sandbox rootfs path %q is not absolute", in.RootfsPath)
	case in.InitPath != "" && !filepath.IsAbs(in.InitPath):
		return errdefs.InvalidArgument("sandbox init path %q is not absolute", in.InitPath)
	case in.Node == nil:
		return errdefs.InvalidArgument("node facts are missing")
	}
	return in.Node.Host.validate()
}

// sandboxProcessUser takes the pod's numeric run_as_user/run_as_group; the
// init's root holds no /etc/passwd to resolve anything else in.
func sandboxProcessUser(sc *runtimeapi.LinuxSandboxSecurityContext) (specs.User, error) {
	u := specs.User{UID: sandboxUser, GID: sandboxUser}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil {
		return u, errdefs.InvalidArgument("sandbox run_as_group is set without run_as_user")
	}
	var err error
	if v := sc.GetRunAsUser(); v != nil {
		if u.UID, err = checkID(v.GetValue(), "sandbox run_as_user"); err != nil {
			return u, err
		}
		u.GID = 0
	}
	if v := sc.GetRunAsGroup(); v != nil {
		if u.GID, err = checkID(v.GetValue(), "sandbox run_as_group"); err != nil {
			return u, err
		}
	}
	u.AdditionalGids = []uint32{u.GID}
	return u, nil
}

func sandboxAnnotations(id string, cfg *runtimeapi.PodSandboxConfig) map[string]string {
	a := podAnnotations(id, cfg)
	a[AnnotationContainerType] = ContainerTypeSandbox
	a[AnnotationCRIOContainerType] = ContainerTypeSandbox
	a[AnnotationSandboxLogDir] = cfg.GetLogDirectory()
	return a
}
