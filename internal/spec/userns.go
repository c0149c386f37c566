package spec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/userns"
)

// usernsSpec is the user namespace part of a container's spec: the pod's
// pinned namespace, joined by path, plus its mappings. runc (1.1) needs the
// mappings even when it joins by path: it finds the host IDs of the
// container's root in them (to own /dev and the exec fifo); they must be the
// namespace's own, which they are, both coming from the pod's config.
type usernsSpec struct {
	ns       *specs.LinuxNamespace
	uid, gid []specs.LinuxIDMapping
}

// userNamespace checks the pod's and the container's userns_options and
// returns the spec for them. A container config without options follows
// the pod (kubelet copies the pod's); one with options must agree with the
// pod, since the pod owns the namespace.
func userNamespace(pod, ctr *runtimeapi.UserNamespace, path string) (usernsSpec, error) {
	po, err := userns.FromCRI(pod)
	if err != nil {
		return usernsSpec{}, err
	}
	if ctr != nil {
		co, err := userns.FromCRI(ctr)
		if err != nil {
			return usernsSpec{}, err
		}
		if (po == nil) != (co == nil) || (po != nil && *po != *co) {
			return usernsSpec{}, errdefs.InvalidArgument("conflicting user namespace options: the container's differ from its sandbox's")
		}
	}
	if po == nil {
		return usernsSpec{}, nil
	}
	if path == "" {
		return usernsSpec{}, errdefs.FailedPrecondition("the sandbox has no user namespace path")
	}
	idmap := func(m userns.Mapping) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}}
	}
	return usernsSpec{
		ns:  &specs.LinuxNamespace{Type: specs.UserNamespace, Path: path},
		uid: idmap(po.UID), gid: idmap(po.GID),
	}, nil
}

// apply puts the namespace and mappings into s.
func (u usernsSpec) apply(s *specs.Spec) {
	if u.ns == nil {
		return
	}
	s.Linux.UIDMappings, s.Linux.GIDMappings = u.uid, u.gid
}
