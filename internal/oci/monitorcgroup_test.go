package oci

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"
	"time"
)

// procCgroups maps each hierarchy line of /proc/<pid>/cgroup (by its
// controller list) to the process's cgroup in it.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			out[parts[0]+":"+parts[1]] = parts[2]
		}
	}
	return out
}

func monitorEnv(t *testing.T) *testEnv {
	e := newEnv(t)
	e.rt.Close()
	e.cfg.MonitorCgroups = true
	e.rt = e.open()
	return e
}

func assertCgroupGone(t *testing.T, cg string) {
	t.Helper()
	for _, d := range cgroupDirs(cg) {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left behind", d)
			os.Remove(d)
		}
	}
}

func TestConmonLivesInItsCgroupBesideTheContainer(t *testing.T) {
	e := monitorEnv(t)
	c := e.newContainer([]string{"sleep", "600"})
	ctrPid := e.run(c)
	rec, err := e.rt.readRecord(c.id)
	if err != nil {
		t.Fatal(err)
	}
	wantMonitor := path.Join("/", testCgroupParent, monitorCgroupPrefix+c.id)
	wantCtr := path.Join("/", testCgroupParent, c.id)
	// The move happens after Create returns, off the start path.
	eventually(t, 10*time.Second, "conmon in its monitor cgroup", func() bool {
		for _, cg := range procCgroups(t, rec.MonitorPid) {
			if cg != wantMonitor {
				return false
			}
		}
		return true
	})
	mon, ctr := procCgroups(t, rec.MonitorPid), procCgroups(t, ctrPid)
	if len(mon) == 0 {
		t.Fatal("conmon has no cgroups")
	}
	for h, cg := range mon {
		if cg != wantMonitor {
			t.Errorf("conmon in %s of hierarchy %q, want %s", cg, h, wantMonitor)
		}
		// The container is runc's business and stays in its own cgroup.
		if ctr[h] != wantCtr {
			t.Errorf("container in %s of hierarchy %q, want %s", ctr[h], h, wantCtr)
		}
	}

	// A restarted daemon deletes it from the record alone.
	e.rt.Close()
	e.rt = e.open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.rt.Delete(ctx, c.id, true); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertCgroupGone(t, wantMonitor)
}

func TestFailedCreateRemovesTheMonitorCgroup(t *testing.T) {
	e := monitorEnv(t)
	c := e.newContainer([]string{"/no/such/binary"})
	if _, err := e.rt.Create(ctxT(t), c.opts()); err == nil {
		t.Skip("this runtime finds a missing binary only at start")
	}
	assertCgroupGone(t, path.Join("/", testCgroupParent, monitorCgroupPrefix+c.id))
}

func TestNoMonitorCgroupForTheSystemdDriverOrRelativePaths(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{MonitorCgroups: true}}
	write := func(cg string) string {
		b := t.TempDir()
		if err := os.WriteFile(b+"/config.json", []byte(`{"linux":{"cgroupsPath":"`+cg+`"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		return b
	}
	for cg, want := range map[string]string{
		"/kubepods/burstable/pod1/abc": "/kubepods/burstable/pod1/" + monitorCgroupPrefix + "abc",
		"/cradle/x/":                   "/cradle/" + monitorCgroupPrefix + "x",
		"relative/abc":                 "",
		"/":                            "",
	} {
		got, err := r.monitorCgroupFor(write(cg))
		if err != nil || got != want {
			t.Errorf("monitor cgroup of %q = %q, %v; want %q", cg, got, err, want)
		}
	}
	r.cfg.SystemdCgroup = true
	if got, _ := r.monitorCgroupFor(write("/kubepods/pod1/abc")); got != "" {
		t.Errorf("systemd driver: monitor cgroup %q, want none", got)
	}
	r.cfg.SystemdCgroup = false
	if _, err := r.monitorCgroupFor(dir); err == nil {
		t.Error("a bundle without config.json gave no error")
	}
	r.cfg.MonitorCgroups = false
	if got, _ := r.monitorCgroupFor(write("/kubepods/pod1/abc")); got != "" {
		t.Errorf("disabled: monitor cgroup %q, want none", got)
	}
}

// Delete right after Create, while the monitor's move may still be in
// flight, must not leave the monitor cgroup behind.
func TestDeleteRightAfterCreateLeavesNoMonitorCgroup(t *testing.T) {
	e := monitorEnv(t)
	for range 3 {
		c := e.newContainer([]string{"sleep", "600"})
		if _, err := e.rt.Create(ctxT(t), c.opts()); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Delete(ctxT(t), c.id, true); err != nil {
			t.Fatal(err)
		}
		assertCgroupGone(t, path.Join("/", testCgroupParent, monitorCgroupPrefix+c.id))
	}
}
