package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// System is the host as Build sees it for per-request lookups. OS is the
// real one; tests substitute a fake.
type System interface {
	// Stat follows symlinks.
	Stat(path string) (fs.FileInfo, error)
	// EvalSymlinks returns the real path behind path.
	EvalSymlinks(path string) (string, error)
	// ReadFile reads a small host file (seccomp profiles, AppArmor's list).
	ReadFile(path string) ([]byte, error)
	// Devices returns the device node at path (not following a final
	// symlink), or every device node below path when it is a directory, with
	// host paths. A path that is neither gives ErrNotDevice.
	Devices(path string) ([]specs.LinuxDevice, error)
	// Propagation returns "shared", "slave" or "private" for the mount that
	// holds path.
	Propagation(path string) (string, error)
}

// ErrNotDevice is returned by System.Devices for a path that is no device.
var ErrNotDevice = errors.New("not a device node")

// OS is the System of the running host.
type OS struct{}

func (OS) Stat(p string) (fs.FileInfo, error)            { return os.Stat(p) }
func (OS) EvalSymlinks(p string) (string, error)         { return filepath.EvalSymlinks(p) }
func (OS) Propagation(p string) (string, error)          { return propagationOf(p) }
func (OS) Devices(p string) ([]specs.LinuxDevice, error) { return devicesAt(p) }

// maxHostFile bounds reads of profiles; real ones are tens of kilobytes.
const maxHostFile = 8 << 20

func (OS) ReadFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHostFile+1))
	if err == nil && len(b) > maxHostFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxHostFile)
	}
	return b, err
}

// Directories under /dev that hold no devices of their own or belong to the
// container's own mounts.
var skipDeviceDirs = map[string]bool{
	"pts": true, "shm": true, "fd": true, "mqueue": true,
	".lxc": true, ".lxd-mounts": true, ".udev": true,
}

func devicesAt(p string) ([]specs.LinuxDevice, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		d, err := deviceFromPath(p)
		if err != nil {
			return nil, err
		}
		return []specs.LinuxDevice{*d}, nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		child := filepath.Join(p, e.Name())
		switch {
		case e.IsDir() && skipDeviceDirs[e.Name()]:
		case e.IsDir():
			sub, err := devicesAt(child)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case e.Name() == "console":
			// The container gets its own console from the runtime.
		default:
			d, err := deviceFromPath(child)
			if errors.Is(err, ErrNotDevice) || errors.Is(err, fs.ErrNotExist) {
				continue // a symlink or plain file, or gone meanwhile
			}
			if err != nil {
				return nil, err
			}
			out = append(out, *d)
		}
	}
	return out, nil
}

func deviceFromPath(p string) (*specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFCHR:
		typ = "c"
	default:
		return nil, fmt.Errorf("%s: %w", p, ErrNotDevice)
	}
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return &specs.LinuxDevice{
		Path:     p,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}

func propagationOf(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return "", err
	}
	m, ok := mountOf(mounts, real)
	if !ok {
		return "", fmt.Errorf("no mount holds %s", real)
	}
	return m.propagation, nil
}

type mountEntry struct {
	point       string
	propagation string
}

// parseMountinfo reads the mount point and propagation of each line of
// /proc/<pid>/mountinfo (see proc(5)): the optional fields carry shared:N
// and master:N.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	infos, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, 0, len(infos))
	for _, i := range infos {
		e := mountEntry{point: i.Mountpoint, propagation: "private"}
		for _, opt := range strings.Fields(i.Optional) {
			switch {
			case strings.HasPrefix(opt, "shared:"):
				e.propagation = "shared"
			case strings.HasPrefix(opt, "master:") && e.propagation == "private":
				e.propagation = "slave"
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// mountOf finds the mount holding p: the longest mount point containing it,
// and of mounts stacked on one point the last, which is on top.
func mountOf(mounts []mountEntry, p string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, m := range mounts {
		inside := m.point == "/" || p == m.point || strings.HasPrefix(p, m.point+"/")
		if inside && (!found || len(m.point) >= len(best.point)) {
			best, found = m, true
		}
	}
	return best, found
}
