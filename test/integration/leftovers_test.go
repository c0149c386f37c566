package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// reapLeftovers removes what a test left running under a daemon dir it is
// done with — containers (killed through runc, which also removes their
// cgroups; their conmons then exit) and mounts — so that a test that does
// not tear its pods down cannot leave processes and cgroups on the host.
// The daemon has been killed by then, so it has no say.
func reapLeftovers(t *testing.T, dir string) {
	roots, _ := filepath.Glob(filepath.Join(dir, "state", "runtime", "*"))
	for _, root := range roots {
		out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			t.Logf("reaping container %s left by the test", id)
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
				t.Logf("runc delete --force %s: %v: %s", id, err, out)
			}
		}
	}
	unmountUnder(t, dir)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		p := strings.ReplaceAll(fields[4], `\040`, " ")
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
