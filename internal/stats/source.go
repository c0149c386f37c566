package stats

import (
	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/fsusage"
)

// Source is where the collector reads from: the kernel on a real host, a
// counting fake in tests that prove an RPC costs no reads.
type Source interface {
	// Cgroup reads the cgroup at a runtime-spec cgroupsPath, stats and
	// details (all of them with full) together; a missing cgroup is
	// ErrNotFound.
	Cgroup(cgroupsPath string, full bool) (CgroupSample, error)
	// Network reads the interfaces of a pinned network namespace.
	Network(netnsPath string) ([]Interface, error)
	// Layer walks a writable layer; Filesystem describes the filesystem
	// holding it.
	Layer(dir string) (bytes, inodes uint64, err error)
	Filesystem(dir string) (FsInfo, error)
}

// FsInfo is the capacity of a filesystem.
type FsInfo struct {
	CapacityBytes, AvailableBytes uint64
	InodesTotal, InodesFree       uint64
}

// HostSource reads the host's cgroups under h, its /proc and its disks.
func HostSource(h Hierarchy) Source { return hostSource{h} }

type hostSource struct{ h Hierarchy }

func (s hostSource) Cgroup(p string, full bool) (CgroupSample, error) { return s.h.Sample(p, full) }
func (s hostSource) Network(p string) ([]Interface, error)            { return ReadNetwork(p) }
func (s hostSource) Layer(dir string) (uint64, uint64, error)         { return fsusage.Walk(dir) }

func (s hostSource) Filesystem(dir string) (FsInfo, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return FsInfo{}, err
	}
	bs := uint64(st.Bsize)
	return FsInfo{
		CapacityBytes: st.Blocks * bs, AvailableBytes: st.Bavail * bs,
		InodesTotal: st.Files, InodesFree: st.Ffree,
	}, nil
}
