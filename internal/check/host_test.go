package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/netns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts, namespace pins and cgroups")
	}
}

func mount(t *testing.T, src, target, fstype string, flags uintptr) {
	t.Helper()
	must(t, os.MkdirAll(target, 0o700))
	must(t, unix.Mount(src, target, fstype, flags, ""))
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
}

// TestHostLeftovers plants what needs root: mounts, pins, a cgroup with a
// process in it. Removing a dir must never reach into a mount below it.
func TestHostLeftovers(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	survivors := e.valid()

	stray := filepath.Join(e.root, "stray")
	mount(t, "tmpfs", stray, "tmpfs", 0)

	// A bundle without a record whose rootfs is a bind of precious data.
	precious := filepath.Join(t.TempDir(), "precious")
	must(t, os.MkdirAll(precious, 0o700))
	must(t, os.WriteFile(filepath.Join(precious, "keep"), []byte("x"), 0o600))
	bundle := newID()
	mount(t, precious, filepath.Join(e.state, "containers", bundle, "rootfs"), "", unix.MS_BIND)

	// A pod dir without a record, with a pinned netns and its shm.
	orphan := newID()
	pinned, err := netns.Pin(filepath.Join(e.state, "pods", orphan, "ns"), netns.Net, netns.UTS)
	must(t, err)
	t.Cleanup(func() { netns.Unpin(pinned.Dir()) })
	mount(t, "tmpfs", filepath.Join(e.state, "pods", orphan, "shm"), "tmpfs", 0)

	// A READY pod on its own namespaces, whose pins are gone.
	lost := newID()
	e.podRecord(lost, "ready", false)

	// The cgroup of the bundle's container, with a process left in it.
	cg := filepath.Join("/sys/fs/cgroup/pids", defaultCgroupParent, bundle)
	must(t, os.MkdirAll(cg, 0o755))
	t.Cleanup(func() { os.Remove(cg) })
	stray2 := e.helperProcess("container-process")
	must(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(itoa(stray2.Process.Pid)), 0o644))

	rep := e.run(false)
	for _, w := range []want{
		{"mount", "stale", stray}, {"container", "orphan-bundle", bundle}, {"pod", "orphan-dir", orphan},
		{"pod", "ready-without-state", lost}, {"cgroup", "orphan", defaultCgroupParent + "/" + bundle},
	} {
		if !hasFinding(rep.Findings, w) {
			t.Errorf("missing finding %+v", w)
		}
	}
	if t.Failed() {
		t.Fatalf("report:\n%s", dump(rep))
	}
	rep = e.run(true)
	if !rep.Clean() {
		t.Fatalf("left after repair:\n%s", dump(rep))
	}
	if !present(filepath.Join(precious, "keep")) {
		t.Fatal("removing the orphan bundle reached into the mount below it")
	}
	for _, p := range []string{cg, filepath.Join(e.state, "pods", orphan), filepath.Join(e.state, "containers", bundle)} {
		if present(p) {
			t.Errorf("%s is still there", p)
		}
	}
	if !dead(stray2.Process.Pid) {
		t.Error("the process in the orphan cgroup still runs")
	}
	mi, err := readMountinfo("/proc/self/mountinfo")
	must(t, err)
	for _, m := range mi {
		if below(m.point, e.root) || below(m.point, e.state) {
			t.Errorf("still mounted: %s", m.point)
		}
	}
	for _, p := range survivors {
		if !present(p) {
			t.Errorf("repair removed %s, which a valid record names", p)
		}
	}
}

// dead says whether pid has exited: gone, or a zombie its parent (the
// helper's Wait) has not reaped yet.
func dead(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(st), ')')
	return i > 0 && i+2 < len(st) && st[i+2] == 'Z'
}
