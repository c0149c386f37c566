package stats

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func v1Tree(t *testing.T, limit string, swap bool) string {
	root := t.TempDir()
	files := map[string]string{
		"cpuacct/pod/c1/cpuacct.usage":        "123456789\n",
		"memory/pod/c1/memory.usage_in_bytes": "50000000\n",
		"memory/pod/c1/memory.stat": "cache 1\nrss 2\ninactive_file 3\n" +
			"hierarchical_memory_limit " + limit + "\n" +
			"total_rss 30000000\ntotal_inactive_file 8000000\ntotal_pgfault 900\ntotal_pgmajfault 7\n",
	}
	if swap {
		files["memory/pod/c1/memory.memsw.usage_in_bytes"] = "50004096\n"
	}
	writeFiles(t, root, files)
	return root
}

func TestReadV1(t *testing.T) {
	h := Hierarchy{Root: v1Tree(t, "104857600", true)}
	got, err := h.Read("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupStats{
		CPUUsageNanos: 123456789, MemoryUsage: 50000000, WorkingSet: 42000000, RSS: 30000000,
		PageFaults: 900, MajorPageFaults: 7, MemoryLimit: 104857600, Swap: 4096, HasSwap: true,
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestReadV1UnlimitedNoSwapAccounting(t *testing.T) {
	h := Hierarchy{Root: v1Tree(t, "9223372036854771712", false)}
	got, err := h.Read("/pod/c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryLimit != 0 || got.HasSwap || got.Swap != 0 {
		t.Fatalf("unlimited cgroup without memsw: got limit %d swap %d/%v", got.MemoryLimit, got.Swap, got.HasSwap)
	}
}

func TestReadV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpu memory\n",
		"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/cpu.stat":       "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
		"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/memory.current": "20000000\n",
		"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/memory.stat": "anon 15000000\nfile 5000000\ninactive_file 4000000\n" +
			"pgfault 100\npgmajfault 2\n",
		"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/memory.max":          "max\n",
		"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/memory.swap.current": "8192\n",
	})
	h := DetectHierarchy(root)
	if !h.V2 {
		t.Fatal("a root with cgroup.controllers is not detected as v2")
	}
	got, err := h.Read("kubepods-besteffort.slice:cradle:c1")
	if err != nil {
		t.Fatal(err)
	}
	want := CgroupStats{
		CPUUsageNanos: 2500000, MemoryUsage: 20000000, WorkingSet: 16000000, RSS: 15000000,
		PageFaults: 100, MajorPageFaults: 2, Swap: 8192, HasSwap: true,
	}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	writeFiles(t, root, map[string]string{"kubepods.slice/kubepods-besteffort.slice/cradle-c1.scope/memory.max": "1048576\n"})
	if got, err = h.Read("kubepods-besteffort.slice:cradle:c1"); err != nil || got.MemoryLimit != 1048576 {
		t.Fatalf("limited v2 cgroup: limit %d, err %v", got.MemoryLimit, err)
	}
}

func TestDetectHybridAsV1(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"unified/cgroup.controllers": "", "memory/tasks": ""})
	if DetectHierarchy(root).V2 {
		t.Fatal("hybrid host (v2 only under unified/) detected as v2")
	}
}

func TestReadMissingCgroupIsNotFound(t *testing.T) {
	h := Hierarchy{Root: t.TempDir()}
	if _, err := h.Read("/pod/gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing v1 cgroup: %v, want ErrNotFound", err)
	}
	h.V2 = true
	if _, err := h.Read("/pod/gone"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing v2 cgroup: %v, want ErrNotFound", err)
	}
}

func TestReadCorruptFile(t *testing.T) {
	root := v1Tree(t, "1", false)
	writeFiles(t, root, map[string]string{"memory/pod/c1/memory.stat": "total_rss lots\n"})
	_, err := Hierarchy{Root: root}.Read("/pod/c1")
	if err == nil || errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "total_rss") {
		t.Fatalf("corrupt memory.stat: %v, want a parse error naming the key", err)
	}
}

func TestCgroupDir(t *testing.T) {
	for in, want := range map[string]string{
		"/cradle/c1":                              "/cradle/c1",
		"system.slice:cradle:c1":                  "/system.slice/cradle-c1.scope",
		"kubepods-burstable-pod1.slice:cradle:c1": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cradle-c1.scope",
		"-.slice:cradle:c1":                       "/cradle-c1.scope",
		"machine.slice::c1.slice":                 "/machine.slice/c1.slice",
	} {
		got, err := cgroupDir(in)
		if err != nil || got != want {
			t.Errorf("cgroupDir(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"relative/path", "/a/../../etc", "system.slice:cradle", "pod:cradle:c1", "a--b.slice:x:c1", "system.slice:x:a/b"} {
		if _, err := cgroupDir(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("cgroupDir(%q): %v, want ErrInvalidArgument", bad, err)
		}
	}
}
