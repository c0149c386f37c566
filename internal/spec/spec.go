// Package spec turns a CRI container request into an OCI runtime spec.
//
// It is a pure function of its input: it mounts nothing, starts nothing and
// talks to no runtime. What it needs from the machine comes in three explicit
// forms, so every rule can be tested without root:
//   - HostFacts, detected once per daemon (DetectHostFacts);
//   - a System, for the few per-request lookups on the host (host paths of
//     mounts and devices, seccomp profiles, mount propagation);
//   - an fs.FS of the container's root filesystem for /etc/passwd and
//     /etc/group.
//
// Semantics follow the CRI api.proto comments and, where the proto is silent,
// what kubelet expects of containerd and CRI-O. Every request error carries an
// errdefs kind: bad input is ErrInvalidArgument, a node that cannot honour a
// valid request is ErrFailedPrecondition, a feature this release lacks is
// ErrUnimplemented.
package spec

import (
	"io/fs"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Input is one CreateContainer request plus what the caller already prepared.
type Input struct {
	ID        string // container ID
	SandboxID string
	Config    *runtimeapi.ContainerConfig
	Sandbox   *runtimeapi.PodSandboxConfig

	// ImageName is the reference shown in the image-name annotation; empty
	// means the config's user-specified image, else its image field.
	ImageName string
	Image     ocispec.ImageConfig

	// RootfsPath is the container's root filesystem, already mounted.
	RootfsPath string
	// RootFS reads /etc/passwd and /etc/group of the container. Nil opens
	// RootfsPath with os.OpenRoot, so no symlink in the image can reach out.
	RootFS fs.FS

	Namespaces SandboxNamespaces
	Files      SandboxFiles

	// TargetPIDNamespace is the PID namespace path of the container named by
	// namespace_options.target_id, resolved by the caller (it knows the pid).
	TargetPIDNamespace string

	// VolumeDir holds anonymous directories for the image's VOLUMEs (see
	// ImageVolumes). Empty skips them: the paths then stay plain directories
	// of the container's writable layer.
	VolumeDir string

	// ImageMounts maps the cleaned container path of each image volume
	// (Mount.image) to its host source: the image mounted read-only by the
	// caller, at its image_sub_path. See ValidateImageMount.
	ImageMounts map[string]string

	// Handler is the RuntimeClass handler that runs the container ("" is
	// the default one); it picks the entry of Node.Runtimes.
	Handler string

	Node *Node
}

// SandboxNamespaces are the pod's pinned namespaces. A path is only read when
// the pod's mode for that namespace is POD; host namespaces need none.
type SandboxNamespaces struct {
	Network string
	IPC     string
	UTS     string
	// PID is the PID namespace of the pod's init process; it exists only
	// when the pod shares one PID namespace.
	PID string
	// User is the pod's pinned user namespace, when userns_options is POD.
	User string
}

// SandboxFiles are the per-pod files bind-mounted into every container. An
// empty path is skipped.
type SandboxFiles struct {
	Hostname   string
	ResolvConf string
	Hosts      string
	// ShmPath is the pod's /dev/shm. Empty gives the container a private
	// tmpfs; a pod in the host IPC namespace always gets the host's /dev/shm.
	ShmPath string
}

// Node is what stays the same for every container of this daemon: detected
// facts and choices from cradle's configuration.
type Node struct {
	Host HostFacts

	// CgroupDriver is "cgroupfs" (the default when empty) or "systemd".
	CgroupDriver string
	// DefaultCgroupParent is used when the pod names none: an absolute path
	// for cgroupfs ("/cradle" when empty), a slice for systemd
	// ("system.slice" when empty).
	DefaultCgroupParent string

	// AppArmorProfile names the runtime's default profile, already loaded
	// into the kernel by the caller. Empty runs RuntimeDefault containers
	// without AppArmor confinement.
	AppArmorProfile string

	// Rlimits are set on every container process. Nil sets none: processes
	// inherit the runtime's limits, as with containerd.
	Rlimits []specs.POSIXRlimit

	// UnprivilegedPorts and UnprivilegedICMP add the sysctls
	// net.ipv4.ip_unprivileged_port_start=0 and net.ipv4.ping_group_range
	// to pods with their own network namespace, unless the pod sets them.
	UnprivilegedPorts bool
	UnprivilegedICMP  bool

	// Runtimes are the detected features of each usable handler, "" being
	// the default handler. A handler missing here supports no optional
	// feature.
	Runtimes map[string]RuntimeFeatures
	// FeaturesOf, when set, replaces Runtimes: the daemon's handlers change
	// with a configuration reload.
	FeaturesOf func(handler string) RuntimeFeatures

	// CDI resolves CDI devices; nil refuses a container that asks for one.
	CDI CDIInjector

	// System answers host lookups; nil is the real host (OS{}).
	System System
}

func (n *Node) system() System {
	if n.System == nil {
		return OS{}
	}
	return n.System
}

// Build returns the OCI spec for one container of a pod.
func Build(in Input) (*specs.Spec, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	node, sys := in.Node, in.Node.system()
	sc := in.Config.GetLinux().GetSecurityContext()
	privileged := sc.GetPrivileged()
	if privileged && !in.Sandbox.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, errdefs.InvalidArgument("privileged container %q in a sandbox that is not privileged", in.Config.GetMetadata().GetName())
	}

	ns, err := containerNamespaces(in.Sandbox, sc, in.Namespaces, in.TargetPIDNamespace, node.Host)
	if err != nil {
		return nil, err
	}
	proc, err := buildProcess(&in, sc)
	if err != nil {
		return nil, err
	}
	mounts, propagation, err := buildMounts(&in, sc, ns, sys)
	if err != nil {
		return nil, err
	}
	devices, rules, err := buildDevices(in.Config.GetDevices(), privileged, sys)
	if err != nil {
		return nil, err
	}
	resources, err := buildResources(in.Config.GetLinux().GetResources(), node.Host)
	if err != nil {
		return nil, err
	}
	resources.Devices = rules
	sysctls, err := buildSysctls(in.Sandbox.GetLinux().GetSysctls(), ns, node)
	if err != nil {
		return nil, err
	}
	cgroups, err := cgroupsPath(node, in.Sandbox.GetLinux().GetCgroupParent(), in.ID)
	if err != nil {
		return nil, err
	}
	masked, readonly, err := protectedPaths(sc)
	if err != nil {
		return nil, err
	}
	s := &specs.Spec{
		Version:     specs.Version,
		Process:     proc,
		Root:        &specs.Root{Path: in.RootfsPath, Readonly: sc.GetReadonlyRootfs()},
		Mounts:      mounts,
		Annotations: containerAnnotations(&in),
		Linux: &specs.Linux{
			Sysctl:            sysctls,
			Resources:         resources,
			CgroupsPath:       cgroups,
			Namespaces:        ns.list,
			Devices:           devices,
			RootfsPropagation: propagation,
			MaskedPaths:       masked,
			ReadonlyPaths:     readonly,
		},
	}
	if ns.ownUTS() {
		s.Hostname = in.Sandbox.GetHostname()
	}
	ns.user.apply(s)
	if s.Linux.Seccomp, err = seccompProfile(sc, proc.Capabilities, node.Host, sys); err != nil {
		return nil, err
	}
	if err := injectCDI(s, in.Config, node); err != nil {
		return nil, err
	}
	return s, nil
}

func (in *Input) validate() error {
	switch {
	case in.ID == "":
		return errdefs.InvalidArgument("container ID is empty")
	case in.Config == nil:
		return errdefs.InvalidArgument("container config is missing")
	case in.Config.GetMetadata().GetName() == "":
		return errdefs.InvalidArgument("container metadata name is missing")
	case in.Sandbox == nil:
		return errdefs.InvalidArgument("sandbox config is missing")
	case !filepath.IsAbs(in.RootfsPath):
		return errdefs.InvalidArgument("container rootfs path %q is not absolute", in.RootfsPath)
	case in.Node == nil:
		return errdefs.InvalidArgument("node facts are missing")
	}
	return in.Node.Host.validate()
}

// Annotation keys, shared with containerd so that OCI hooks and runtimes
// written for it (kata, gVisor) recognise cradle's containers.
const (
	AnnotationContainerType    = "io.kubernetes.cri.container-type"
	AnnotationSandboxID        = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName      = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID       = "io.kubernetes.cri.sandbox-uid"
	AnnotationSandboxLogDir    = "io.kubernetes.cri.sandbox-log-directory"
	AnnotationContainerName    = "io.kubernetes.cri.container-name"
	AnnotationImageName        = "io.kubernetes.cri.image-name"

	ContainerTypeContainer = "container"
	ContainerTypeSandbox   = "sandbox"

	// CRI-O's twins of the type and sandbox ID, which sandboxed runtimes
	// (Kata, gVisor) read as well.
	AnnotationCRIOContainerType = "io.kubernetes.cri-o.ContainerType"
	AnnotationCRIOSandboxID     = "io.kubernetes.cri-o.SandboxID"
)

func podAnnotations(sandboxID string, cfg *runtimeapi.PodSandboxConfig) map[string]string {
	return map[string]string{
		AnnotationSandboxID:        sandboxID,
		AnnotationCRIOSandboxID:    sandboxID,
		AnnotationSandboxName:      cfg.GetMetadata().GetName(),
		AnnotationSandboxNamespace: cfg.GetMetadata().GetNamespace(),
		AnnotationSandboxUID:       cfg.GetMetadata().GetUid(),
	}
}

func containerAnnotations(in *Input) map[string]string {
	a := podAnnotations(in.SandboxID, in.Sandbox)
	a[AnnotationContainerType] = ContainerTypeContainer
	a[AnnotationCRIOContainerType] = ContainerTypeContainer
	a[AnnotationContainerName] = in.Config.GetMetadata().GetName()
	image := in.ImageName
	if image == "" {
		image = in.Config.GetImage().GetUserSpecifiedImage()
	}
	if image == "" {
		image = in.Config.GetImage().GetImage()
	}
	a[AnnotationImageName] = image
	return a
}
