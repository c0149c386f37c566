package sandbox

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/userns"
)

// A pod with its own user namespace (userns_options mode POD) has it pinned
// at <state>/pods/<id>/userns/user, created together with the pod's net, IPC
// and UTS namespaces so that those belong to it: a container's root can then
// mount sysfs and set the pod's sysctls and hostname, and nothing of the
// host's. Like the other pins it is undone by teardown whatever state a
// crash left, so the record needs no flag of its own: the directory is
// derived from the pod ID.

func (m *Manager) usernsDir(id string) string { return filepath.Join(m.podDir(id), "userns") }

// podUserns is the pod's own user namespace, nil for the host's. The config
// was validated by Run, so errors cannot happen here.
func podUserns(cfg *runtimeapi.PodSandboxConfig) *userns.Options {
	o, _ := userns.FromCRI(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions())
	return o
}

// validateUserns checks userns_options: mode, mappings, and that the pod
// owns every namespace its user namespace must own. A user namespace
// cannot own the host's network (see RuntimeFeatures
// user_namespaces_host_network, which cradle reports false).
func validateUserns(o *runtimeapi.NamespaceOption) error {
	u, err := userns.FromCRI(o.GetUsernsOptions())
	if err != nil || u == nil {
		return err
	}
	if o.GetNetwork() == runtimeapi.NamespaceMode_NODE || o.GetIpc() == runtimeapi.NamespaceMode_NODE || o.GetPid() == runtimeapi.NamespaceMode_NODE {
		return errdefs.InvalidArgument("a pod with its own user namespace cannot use the host's network, IPC or PID namespace")
	}
	return nil
}

// pinWithUserns creates the pod's user namespace with the kinds it owns in
// one child process and pins them all.
func (m *Manager) pinWithUserns(p *pod, opts *userns.Options, kinds []netns.Kind) error {
	if err := m.searchableByPod(p.id); err != nil {
		return err
	}
	var flags uintptr
	for _, k := range kinds {
		flags |= cloneFlag(k)
	}
	h, err := userns.Spawn(opts, flags)
	if err != nil {
		return fmt.Errorf("pod user namespace: %w", err)
	}
	defer h.Close()
	if _, err := userns.Pin(m.usernsDir(p.id), h); err != nil {
		return fmt.Errorf("pin pod user namespace: %w", err)
	}
	if _, err := netns.PinFrom(m.nsDir(p.id), h.Pid, kinds...); err != nil {
		return fmt.Errorf("pin pod namespaces: %w", err)
	}
	return nil
}

func cloneFlag(k netns.Kind) uintptr {
	switch k {
	case netns.Net:
		return unix.CLONE_NEWNET
	case netns.IPC:
		return unix.CLONE_NEWIPC
	case netns.UTS:
		return unix.CLONE_NEWUTS
	}
	return 0
}

// searchableByPod lets the pod's root, which is no one on the host, reach
// the pod's files: runc bind-mounts hostname, resolv.conf, hosts and
// /dev/shm from inside the user namespace, where only the "other"
// permission bits apply to host-owned directories. The pods directory gets
// o+x (search, not list: pod IDs stay unlisted); the state dir above it
// must already allow that, which the daemon's 0711 does.
func (m *Manager) searchableByPod(id string) error {
	if err := addSearch(m.podsDir); err != nil {
		return err
	}
	for d := filepath.Dir(m.podsDir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pod user namespace: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return errdefs.FailedPrecondition("pod user namespace: %s (mode %o) is not searchable by others, so the pod's root cannot reach its files; make it 0711", d, st.Mode().Perm())
		}
		if d == "/" {
			break
		}
	}
	return addSearch(m.podDir(id))
}

func addSearch(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pod user namespace: %w", err)
	}
	if st.Mode().Perm()&0o001 != 0 {
		return nil
	}
	if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
		return fmt.Errorf("pod user namespace: %w", err)
	}
	return nil
}

// chownForUserns gives an empty directory the pod's root, so the runtime,
// inside the user namespace, can create mount points in it (the init's
// rootfs).
func chownForUserns(dir string, opts *userns.Options) error {
	if opts == nil {
		return nil
	}
	if err := os.Lchown(dir, int(opts.UID.HostRoot()), int(opts.GID.HostRoot())); err != nil {
		return fmt.Errorf("pod init rootfs: %w", err)
	}
	return nil
}

// unpinUserns is teardown's step; an absent pin is fine.
func (m *Manager) unpinUserns(id string) error { return userns.Unpin(m.usernsDir(id)) }
