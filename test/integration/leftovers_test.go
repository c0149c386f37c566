package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/check"
	"github.com/cradle-runtime/cradle/internal/config"
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

// reapLeftovers runs `cradle check --repair`'s census (internal/check) on
// a daemon's root and state once its daemon is gone, so a test cannot leave
// containers, processes, cgroups, mounts or leases on the host; then it
// detaches whatever is still mounted anywhere under dir. After a daemon
// removed every pod (tornDown) there must be nothing to repair: what is,
// leaked.
func reapLeftovers(t *testing.T, dir string, tornDown bool) {
	report := t.Logf
	if tornDown {
		report = t.Errorf
	}
	if cfg, ok := censusConfig(t, dir); ok {
		rep, err := check.Run(context.Background(), cfg, check.Options{Repair: true})
		if err != nil {
			t.Logf("census of %s: %v", dir, err)
		} else {
			for _, f := range rep.Findings {
				report("left behind: %s %s %s (%s); repair: %s %s %s", f.Kind, f.Object, f.Problem, f.Detail, f.Action, f.Result, f.Error)
			}
			for _, s := range rep.Incomplete {
				t.Logf("census of %s incomplete: %s", dir, s)
			}
		}
	}
	// What a valid record still names (a container of a pod nobody tore
	// down) is no orphan to the census, but a test must not leave it
	// running either: the runtime kills it, and removes its cgroups.
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

// censusConfig is what the census checks: the daemon's own config when it
// loads, else its dirs with the default runtime.
func censusConfig(t *testing.T, dir string) (check.Config, bool) {
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	for _, d := range []string{root, state} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return check.Config{}, false // the daemon never ran
		}
	}
	loaded, err := config.Load(filepath.Join(dir, "cradle.toml"), config.Overrides{Root: root, State: state})
	if err != nil {
		t.Logf("census: %v; checking with the default runtime", err)
		def := config.Default()
		def.Root, def.State = root, state
		loaded = &config.Loaded{Config: def}
	}
	cfg, err := check.FromConfig(loaded)
	if err != nil {
		t.Logf("census: %v", err)
	}
	return cfg, true
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
