// Package userns gives pods their own user namespace (KEP-127): it checks
// the CRI's ID mappings, creates a user namespace together with the pod's
// network, IPC and UTS namespaces so that they are owned by it, pins the
// user namespace with a bind mount (no process keeps it alive), and makes
// idmapped mounts, so files owned by host root appear owned by the
// container's root inside it.
package userns

import (
	"fmt"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Mapping maps Size IDs starting at ContainerID inside the namespace to
// HostID and up outside it.
type Mapping struct {
	ContainerID uint32
	HostID      uint32
	Size        uint32
}

// String is the line of /proc/<pid>/uid_map for m.
func (m Mapping) String() string { return fmt.Sprintf("%d %d %d", m.ContainerID, m.HostID, m.Size) }

// HostRoot is the host ID of the namespace's ID 0; only meaningful for a
// mapping that covers 0, which Options guarantees.
func (m Mapping) HostRoot() uint32 { return m.HostID - m.ContainerID }

// Options is a pod's own user namespace: one UID and one GID mapping.
type Options struct {
	UID, GID Mapping
}

// FromCRI reads a pod's userns_options. It returns nil for the host's user
// namespace (options absent or mode NODE) and an InvalidArgument error for
// anything Kubernetes does not define: modes CONTAINER and TARGET, other
// than exactly one UID and one GID mapping, a mapping that leaves the
// container's ID 0 unmapped, an empty or overflowing range, or one that
// maps host root into the pod (which would defeat the namespace).
func FromCRI(u *runtimeapi.UserNamespace) (*Options, error) {
	if u == nil {
		return nil, nil
	}
	switch u.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return nil, errdefs.InvalidArgument("user namespace mode NODE takes no ID mappings")
		}
		return nil, nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return nil, errdefs.InvalidArgument("user namespace mode %s is not supported: use POD or NODE", u.GetMode())
	}
	uid, err := one("uid", u.GetUids())
	if err != nil {
		return nil, err
	}
	gid, err := one("gid", u.GetGids())
	if err != nil {
		return nil, err
	}
	return &Options{UID: uid, GID: gid}, nil
}

func one(kind string, ms []*runtimeapi.IDMapping) (Mapping, error) {
	if len(ms) != 1 {
		return Mapping{}, errdefs.InvalidArgument("user namespace needs exactly one %s mapping, got %d", kind, len(ms))
	}
	m := Mapping{ContainerID: ms[0].GetContainerId(), HostID: ms[0].GetHostId(), Size: ms[0].GetLength()}
	if err := m.check(kind); err != nil {
		return Mapping{}, err
	}
	return m, nil
}

func (m Mapping) check(kind string) error {
	switch {
	case m.Size == 0:
		return errdefs.InvalidArgument("%s mapping %s has length 0", kind, m)
	case uint64(m.ContainerID)+uint64(m.Size) > 1<<32-1, uint64(m.HostID)+uint64(m.Size) > 1<<32-1:
		// 4294967295 is (uid_t)-1, never a valid ID.
		return errdefs.InvalidArgument("%s mapping %s runs past the largest ID", kind, m)
	case m.ContainerID != 0:
		return errdefs.InvalidArgument("%s mapping %s leaves the container's ID 0 unmapped", kind, m)
	case m.HostID == 0:
		return errdefs.InvalidArgument("%s mapping %s maps host ID 0 (root) into the pod", kind, m)
	}
	return nil
}

// ToCRI is the inverse of FromCRI for status replies; nil is the host's.
func (o *Options) ToCRI() *runtimeapi.UserNamespace {
	if o == nil {
		return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	}
	cri := func(m Mapping) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: m.ContainerID, HostId: m.HostID, Length: m.Size}}
	}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: cri(o.UID), Gids: cri(o.GID)}
}

// ParseMap reads the content of a /proc/<pid>/uid_map or gid_map file.
func ParseMap(s string) ([]Mapping, error) {
	var out []Mapping
	for line := range strings.Lines(s) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q: want 3 fields", strings.TrimSpace(line))
		}
		var v [3]uint32
		for i, s := range f {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", strings.TrimSpace(line), err)
			}
			v[i] = uint32(n)
		}
		out = append(out, Mapping{ContainerID: v[0], HostID: v[1], Size: v[2]})
	}
	return out, nil
}
