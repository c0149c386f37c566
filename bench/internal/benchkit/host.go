// Package benchkit holds what cradle's benchmark programs (bench/pull,
// bench/pods, bench/soak) share: starting and stopping the runtimes under
// test, their config files, building cradle, the pod network, the pod
// images and kubelet-like pod configs, /proc readers, percentiles and
// ratios, and host plumbing.
package benchkit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// LoadAverage is the 1, 5 and 15 minute load average.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// WriteHostsDir writes containerd's hosts.toml layout for the registry:
// plain HTTP, pull and resolve. Both runtimes read the same directory.
func WriteHostsDir(dir, host string) error {
	hostDir := filepath.Join(dir, host)
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf("server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", host)
	return os.WriteFile(filepath.Join(hostDir, "hosts.toml"), []byte(conf), 0o644)
}

// RemoveWorkDir unmounts whatever a runtime left mounted below dir (deepest
// first, detached) and removes dir.
func RemoveWorkDir(dir string) error {
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	var mounts []string
	for _, i := range infos {
		mounts = append(mounts, i.Mountpoint)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
