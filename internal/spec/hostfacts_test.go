package spec

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// fakeTree writes files below a temporary proc and sys root.
func fakeTree(t *testing.T, files map[string]string) (proc, sys string) {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if content == "<dir>" {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(root, "proc"), filepath.Join(root, "sys")
}

const statusV1 = "Name:\tcradle\nCapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\nSeccomp:\t0\n"

func TestDetectFromCgroupV1Tree(t *testing.T) {
	proc, sys := fakeTree(t, map[string]string{
		"proc/self/status":                                 statusV1,
		"proc/self/oom_score_adj":                          "-500\n",
		"sys/module/apparmor/parameters/enabled":           "Y\n",
		"sys/fs/selinux/enforce":                           "1",
		"sys/fs/cgroup/hugetlb":                            "<dir>",
		"sys/fs/cgroup/memory/memory.memsw.limit_in_bytes": "9223372036854771712",
		"sys/kernel/mm/hugepages/hugepages-2048kB":         "<dir>",
		"sys/kernel/mm/hugepages/hugepages-1048576kB":      "<dir>",
		"sys/kernel/mm/hugepages/hugepages-64kB":           "<dir>",
		"sys/kernel/mm/hugepages/README":                   "",
	})
	got, err := detectFrom(proc, sys, "6.1.0-18-amd64", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	want := HostFacts{
		Capabilities:      slices.DeleteFunc(slices.Clone(capNames[:]), func(c string) bool { return c == "CAP_SYS_RESOURCE" }),
		OOMScoreAdj:       -500,
		AppArmor:          true,
		SELinux:           true,
		Seccomp:           true,
		Hugetlb:           true,
		HugePageSizes:     []string{"1GB", "2MB", "64KB"},
		SwapAccounting:    true,
		RecursiveReadOnly: true,
		Hostname:          "node-1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("facts (-want +got):\n%s", diff)
	}
}

func TestDetectFromCgroupV2Tree(t *testing.T) {
	proc, sys := fakeTree(t, map[string]string{
		"proc/self/status":                                          "CapBnd:\t00000000a80425fb\n",
		"proc/self/oom_score_adj":                                   "0",
		"proc/self/cgroup":                                          "0::/system.slice/cradle.service\n",
		"sys/module/apparmor/parameters/enabled":                    "N",
		"sys/fs/cgroup/cgroup.controllers":                          "cpuset cpu io memory pids hugetlb\n",
		"sys/fs/cgroup/system.slice/cradle.service/memory.swap.max": "max",
	})
	got, err := detectFrom(proc, sys, "5.10.0", "n")
	if err != nil {
		t.Fatal(err)
	}
	// 0xa80425fb is Docker's default set: the sandboxed-daemon case.
	if want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}; !cmp.Equal(got.Capabilities, want) {
		t.Errorf("caps = %v", got.Capabilities)
	}
	if !got.CgroupV2 || !got.Hugetlb || !got.SwapAccounting || got.AppArmor || got.Seccomp || got.RecursiveReadOnly || got.HugePageSizes != nil {
		t.Errorf("facts = %+v", got)
	}
}

func TestDetectSwapInSiblingCgroup(t *testing.T) {
	// A daemon in the root cgroup still finds swap files in any child.
	proc, sys := fakeTree(t, map[string]string{
		"proc/self/status":                         "CapBnd:\t1\n",
		"proc/self/oom_score_adj":                  "0",
		"proc/self/cgroup":                         "0::/\n",
		"sys/fs/cgroup/cgroup.controllers":         "memory\n",
		"sys/fs/cgroup/init.scope/memory.swap.max": "max",
	})
	got, err := detectFrom(proc, sys, "6.0", "n")
	if err != nil || !got.SwapAccounting || got.Hugetlb {
		t.Fatalf("facts = %+v, %v", got, err)
	}
}

func TestDetectFromErrors(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no status":     {"proc/self/oom_score_adj": "0"},
		"no CapBnd":     {"proc/self/status": "Name:\tx\n", "proc/self/oom_score_adj": "0"},
		"bad CapBnd":    {"proc/self/status": "CapBnd:\tzz\n", "proc/self/oom_score_adj": "0"},
		"no oom score":  {"proc/self/status": statusV1},
		"bad oom score": {"proc/self/status": statusV1, "proc/self/oom_score_adj": "high"},
	} {
		proc, sys := fakeTree(t, files)
		if _, err := detectFrom(proc, sys, "6.0", "n"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPageSizeName(t *testing.T) {
	for kb, want := range map[uint64]string{64: "64KB", 2048: "2MB", 32768: "32MB", 1048576: "1GB", 16777216: "16GB", 1536: "1536KB"} {
		if got := pageSizeName(kb); got != want {
			t.Errorf("pageSizeName(%d) = %q, want %q", kb, got, want)
		}
	}
}

func TestKernelAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"5.12.0": true, "5.11.22": false, "6.1.0-18-amd64": true, "4.19": false, "5.12-rc1": true, "garbage": false, "10.0": true,
	} {
		if got := kernelAtLeast(release, 5, 12); got != want {
			t.Errorf("kernelAtLeast(%q) = %v", release, got)
		}
	}
}

// TestDetectHostFactsOnThisHost checks detection against independent
// sources on the machine running the tests.
func TestDetectHostFactsOnThisHost(t *testing.T) {
	h, err := DetectHostFacts()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.validate(); err != nil {
		t.Fatal(err)
	}
	for i, name := range capNames {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0)
		if err != nil {
			continue // the kernel predates this capability
		}
		if (in == 1) != slices.Contains(h.Capabilities, name) {
			t.Errorf("%s: kernel says in bounding set = %v, facts say %v", name, in == 1, !(in == 1))
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil {
		if v2 := st.Type == unix.CGROUP2_SUPER_MAGIC; v2 != h.CgroupV2 {
			t.Errorf("cgroup v2 by statfs = %v, facts = %v", v2, h.CgroupV2)
		}
	}
	if name, _ := os.Hostname(); name != h.Hostname {
		t.Errorf("hostname %q, facts %q", name, h.Hostname)
	}
	if h.OOMScoreAdj < -1000 || h.OOMScoreAdj > 1000 {
		t.Errorf("oom_score_adj %d out of range", h.OOMScoreAdj)
	}
	entries, _ := os.ReadDir("/sys/kernel/mm/hugepages")
	if len(entries) != len(h.HugePageSizes) {
		t.Errorf("%d hugepage dirs, facts list %v", len(entries), h.HugePageSizes)
	}
	// The facts must let Build run on this host.
	in, _ := testInput()
	in.Node.Host = h
	mustBuild(t, in)
}
