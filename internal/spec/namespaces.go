package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// namespaces is the container's namespace list and the facts other parts of
// the spec depend on.
type namespaces struct {
	list    []specs.LinuxNamespace
	hostNet bool // also means the host's UTS namespace, as in Kubernetes
	hostIPC bool
	user    usernsSpec
}

func (n namespaces) ownUTS() bool { return !n.hostNet }

func checkMode(kind string, m runtimeapi.NamespaceMode) error {
	if _, ok := runtimeapi.NamespaceMode_name[int32(m)]; !ok {
		return errdefs.InvalidArgument("unknown %s namespace mode %d", kind, m)
	}
	return nil
}

// sharedMode checks the network or IPC mode: Kubernetes only knows POD and
// NODE for them, and a container must agree with its sandbox, since the
// sandbox is what holds (or lacks) the namespace.
func sharedMode(kind string, pod, ctr runtimeapi.NamespaceMode) (host bool, err error) {
	if err := checkMode(kind, ctr); err != nil {
		return false, err
	}
	if err := checkMode(kind, pod); err != nil {
		return false, err
	}
	if ctr != runtimeapi.NamespaceMode_POD && ctr != runtimeapi.NamespaceMode_NODE {
		return false, errdefs.InvalidArgument("%s namespace mode %s is not supported: use POD or NODE", kind, ctr)
	}
	if ctr != pod {
		return false, errdefs.InvalidArgument("conflicting %s namespace options: container %s, sandbox %s", kind, ctr, pod)
	}
	return ctr == runtimeapi.NamespaceMode_NODE, nil
}

func joined(t specs.LinuxNamespaceType, path, what string) (specs.LinuxNamespace, error) {
	if path == "" {
		return specs.LinuxNamespace{}, errdefs.FailedPrecondition("the sandbox has no %s namespace path", what)
	}
	return specs.LinuxNamespace{Type: t, Path: path}, nil
}

func containerNamespaces(sandbox *runtimeapi.PodSandboxConfig, sc *runtimeapi.LinuxContainerSecurityContext,
	paths SandboxNamespaces, targetPID string, host HostFacts) (namespaces, error) {
	var n namespaces
	pod := sandbox.GetLinux().GetSecurityContext().GetNamespaceOptions()
	ctr := sc.GetNamespaceOptions()
	if ctr == nil {
		// A container config without namespace options (crictl files,
		// hand-written clients; kubelet always copies the pod's) means "as
		// the pod", not the proto's zero values.
		ctr = pod
	}
	var err error
	if n.user, err = userNamespace(pod.GetUsernsOptions(), ctr.GetUsernsOptions(), paths.User); err != nil {
		return n, err
	}
	if n.user.ns != nil {
		n.list = append(n.list, *n.user.ns)
	}
	if n.hostNet, err = sharedMode("network", pod.GetNetwork(), ctr.GetNetwork()); err != nil {
		return n, err
	}
	if n.hostIPC, err = sharedMode("ipc", pod.GetIpc(), ctr.GetIpc()); err != nil {
		return n, err
	}
	pid, err := pidNamespace(pod, ctr, paths.PID, targetPID)
	if err != nil {
		return n, err
	}
	if pid != nil {
		n.list = append(n.list, *pid)
	}
	if !n.hostNet {
		ns, err := joined(specs.NetworkNamespace, paths.Network, "network")
		if err != nil {
			return n, err
		}
		n.list = append(n.list, ns)
	}
	if !n.hostIPC {
		ns, err := joined(specs.IPCNamespace, paths.IPC, "IPC")
		if err != nil {
			return n, err
		}
		n.list = append(n.list, ns)
	}
	if !n.hostNet {
		ns, err := joined(specs.UTSNamespace, paths.UTS, "UTS")
		if err != nil {
			return n, err
		}
		n.list = append(n.list, ns)
	}
	n.list = append(n.list, specs.LinuxNamespace{Type: specs.MountNamespace})
	// A private cgroup namespace hides the host's hierarchy; on v1 it would
	// break tools that read /proc/self/cgroup, so it is v2 only, and
	// privileged containers keep the host's view as elsewhere.
	if host.CgroupV2 && !sc.GetPrivileged() {
		n.list = append(n.list, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return n, nil
}

// pidNamespace returns nil for the host's PID namespace.
func pidNamespace(pod, ctr *runtimeapi.NamespaceOption, podPath, targetPath string) (*specs.LinuxNamespace, error) {
	if err := checkMode("pid", ctr.GetPid()); err != nil {
		return nil, err
	}
	if err := checkMode("pid", pod.GetPid()); err != nil {
		return nil, err
	}
	podMode, mode := pod.GetPid(), ctr.GetPid()
	if podMode == runtimeapi.NamespaceMode_TARGET {
		return nil, errdefs.InvalidArgument("sandbox pid namespace mode TARGET is not valid")
	}
	// NODE and POD must match the sandbox; CONTAINER and TARGET belong to
	// pods whose containers each have their own.
	want := mode
	if mode == runtimeapi.NamespaceMode_TARGET {
		want = runtimeapi.NamespaceMode_CONTAINER
	}
	if podMode != want {
		return nil, errdefs.InvalidArgument("conflicting pid namespace options: container %s, sandbox %s", mode, podMode)
	}
	switch mode {
	case runtimeapi.NamespaceMode_NODE:
		return nil, nil
	case runtimeapi.NamespaceMode_CONTAINER:
		return &specs.LinuxNamespace{Type: specs.PIDNamespace}, nil
	case runtimeapi.NamespaceMode_POD:
		ns, err := joined(specs.PIDNamespace, podPath, "shared PID")
		return &ns, err
	default: // TARGET
		if ctr.GetTargetId() == "" {
			return nil, errdefs.InvalidArgument("pid namespace mode TARGET needs a target_id")
		}
		if targetPath == "" {
			return nil, errdefs.FailedPrecondition("no PID namespace path for target container %s", ctr.GetTargetId())
		}
		return &specs.LinuxNamespace{Type: specs.PIDNamespace, Path: targetPath}, nil
	}
}
