package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tearDownPods stops and removes every pod of a live daemon at the end of a
// test, as kubelet would, so no test leaves pods behind; a failure to tear
// down is a failure of the test.
func (d *daemon) tearDownPods() {
	t := d.t
	select {
	case <-d.done:
		return
	default:
	}
	if d.Runtime == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pods, err := d.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Errorf("teardown: ListPodSandbox: %v", err)
		return
	}
	ok := true
	for _, p := range pods {
		if err := d.Runtime.StopPodSandbox(ctx, p.Id); err != nil {
			t.Errorf("teardown: StopPodSandbox %s: %v", p.Id, err)
			ok = false
		}
		if err := d.Runtime.RemovePodSandbox(ctx, p.Id); err != nil {
			t.Errorf("teardown: RemovePodSandbox %s: %v", p.Id, err)
			ok = false
		}
	}
	d.tornDown = ok
}

// reapLeftovers removes what is still running or mounted under a daemon dir
// once its daemon is gone — containers (killed through runc, which also
// removes their cgroups; their conmons then exit) and mounts — so a test
// cannot leave processes, cgroups or mounts on the host. After a daemon
// removed every pod (tornDown) there must be nothing left: what is, leaked.
func reapLeftovers(t *testing.T, dir string, tornDown bool) {
	report := t.Logf
	if tornDown {
		report = t.Errorf
	}
	roots, _ := filepath.Glob(filepath.Join(dir, "state", "runtime", "*"))
	for _, root := range roots {
		out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
		if err != nil {
			continue
		}
		for _, id := range strings.Fields(string(out)) {
			report("reaping container %s left behind", id)
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id).CombinedOutput(); err != nil {
				t.Logf("runc delete --force %s: %v: %s", id, err, out)
			}
		}
	}
	unmountUnder(t, dir, report)
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(t *testing.T, dir string, report func(string, ...any)) {
	points := mountsUnder(t, dir)
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		report("unmounting %s left behind", p)
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}
