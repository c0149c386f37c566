package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

func TestBoundariesIncludeCheckpointsAndEndAtN(t *testing.T) {
	cases := []struct {
		n, segments int
		want        []int
	}{
		{1000, 10, []int{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}},
		{7, 2, []int{3, 7}},         // n/2 = 3 is a boundary already
		{10, 3, []int{3, 5, 6, 10}}, // the checkpoint 5 splits a segment
		{1, 10, []int{1}},           // no empty segments
		{3, 1, []int{1, 3}},         // checkpoint 1 = 3/2
		{4, 100, []int{1, 2, 3, 4}}, // more segments than lifecycles
		{1000, 1, []int{500, 1000}}, // one segment still stops at the middle
		{2, 2, []int{1, 2}},         // n/2 and n
		{9, 3, []int{3, 4, 6, 9}},   // 9/2 = 4
		{100, 4, []int{25, 50, 75, 100}},
	}
	for _, c := range cases {
		if got := boundaries(c.n, c.segments, checkpointsOf(c.n)); !slices.Equal(got, c.want) {
			t.Errorf("boundaries(%d, %d) = %v, want %v", c.n, c.segments, got, c.want)
		}
	}
}

func TestCheckpoints(t *testing.T) {
	if got := checkpointsOf(1000); !slices.Equal(got, []int{0, 500, 1000}) {
		t.Errorf("checkpointsOf(1000) = %v", got)
	}
	if got := checkpointsOf(1); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("checkpointsOf(1) = %v", got)
	}
}

func TestOrderAlternates(t *testing.T) {
	a, b := &soaker{name: "cradle"}, &soaker{name: "containerd"}
	ss := []*soaker{a, b}
	if got := orderOf(0, ss); got[0] != a || got[1] != b {
		t.Error("segment 0 must keep the given order")
	}
	if got := orderOf(1, ss); got[0] != b || got[1] != a {
		t.Error("segment 1 must reverse it")
	}
	if ss[0] != a {
		t.Error("orderOf reordered its input")
	}
}

func TestLeakThresholds(t *testing.T) {
	ms := metrics(limits{fds: 10, threads: 10, goroutines: 20, memPercent: 20})
	byName := map[string]metric{}
	for _, m := range ms {
		byName[m.name] = m
	}
	cases := []struct {
		metric      string
		first, last int64
		want        bool
	}{
		{"fds", 20, 30, false}, // +10 is the limit itself
		{"fds", 20, 31, true},
		{"fds", 30, 20, false},
		{"goroutines", -1, 500, false}, // unknown never flags
		{"goroutines", 20, 41, true},
		{"RSS", 1000, 1200, false}, // +20%
		{"RSS", 1000, 1201, true},
		{"PSS", 0, 1, true},
		{"threads", 12, 22, false},
	}
	for _, c := range cases {
		if got := byName[c.metric].grew(c.first, c.last); got != c.want {
			t.Errorf("%s %d -> %d: grew = %v, want %v", c.metric, c.first, c.last, got, c.want)
		}
	}
}

func TestMedianSampleTakesEachFigureOnItsOwn(t *testing.T) {
	got := medianSample([]sample{
		{fds: 30, threads: 1, goroutines: 7, rssKiB: 100, pssKiB: 9},
		{fds: 10, threads: 3, goroutines: 5, rssKiB: 300, pssKiB: 8},
		{fds: 20, threads: 2, goroutines: 6, rssKiB: 200, pssKiB: 7},
	})
	want := sample{fds: 20, threads: 2, goroutines: 6, rssKiB: 200, pssKiB: 8}
	if got != want {
		t.Errorf("medianSample = %+v, want %+v", got, want)
	}
}

func TestParseThreads(t *testing.T) {
	status := "Name:\tcradle\nState:\tS (sleeping)\nThreads:\t14\nSigQ:\t0/1\n"
	if n, err := parseThreads(strings.NewReader(status)); err != nil || n != 14 {
		t.Errorf("parseThreads = %d, %v", n, err)
	}
	if _, err := parseThreads(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("no Threads line must be an error")
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	if n, err := parseGoroutineTotal(strings.NewReader("goroutine profile: total 42\n3 @ 0x1\n")); err != nil || n != 42 {
		t.Errorf("parseGoroutineTotal = %d, %v", n, err)
	}
	for _, bad := range []string{"", "404 page not found\n", "goroutine profile: total many\n"} {
		if _, err := parseGoroutineTotal(strings.NewReader(bad)); err == nil {
			t.Errorf("%q must be an error", bad)
		}
	}
}

func TestPprofGoroutinesWithoutEndpointFails(t *testing.T) {
	count := pprofGoroutines(filepath.Join(t.TempDir(), "absent.sock"))
	if _, err := count(context.Background()); err == nil {
		t.Error("an absent socket must be an error, not a count")
	}
}

const sampleMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 22 8:1 /w/state/pods/P/ns /w/state/pods/P/ns rw shared:9 - ext4 /dev/sda1 rw
41 40 0:4 net:[4026532] /w/state/pods/P/ns/net rw - nsfs nsfs rw
42 40 0:4 uts:[4026533] /w/state/pods/P/ns/uts rw - nsfs nsfs rw
43 22 0:50 / /w/state/containers/C/rootfs rw - overlay overlay rw,lowerdir=l/1
44 22 0:51 / /w/state-other/x rw - tmpfs tmpfs rw
45 22 0:52 / /w/with\040space rw - tmpfs tmpfs rw
`

func TestParseMountinfoAndMountLeaks(t *testing.T) {
	ms, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 11 || ms[10].point != "/w/with space" || ms[3].fstype != "cgroup2" {
		t.Fatalf("parsed %+v", ms)
	}
	leaks := mountLeaks(ms, []string{"/w/root", "/w/state"})
	want := []leak{
		{"mount", "/w/state/pods/P/ns (ext4)"},
		{"netns pin", "/w/state/pods/P/ns/net (nsfs)"},
		{"ns pin", "/w/state/pods/P/ns/uts (nsfs)"},
		{"mount", "/w/state/containers/C/rootfs (overlay)"},
	}
	if !slices.Equal(leaks, want) {
		t.Errorf("mountLeaks = %v, want %v (state-other is not under state)", leaks, want)
	}
	if got := cgroupHierarchies(ms); !slices.Equal(got, []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"}) {
		t.Errorf("cgroupHierarchies = %v", got)
	}
	if _, err := parseMountinfo(strings.NewReader("garbage line\n")); err == nil {
		t.Error("a line without ' - ' must be an error")
	}
}

func TestIPAMLeaksSkipHostLocalBookkeeping(t *testing.T) {
	got := ipamLeaks([]string{"lock", "last_reserved_ip.0", "10.150.3.7", "last_reserved_ip.1"}, "/ipam/net")
	if !slices.Equal(got, []leak{{"ipam", "/ipam/net/10.150.3.7"}}) {
		t.Errorf("ipamLeaks = %v", got)
	}
}

func TestProcessLeaks(t *testing.T) {
	ps := []benchkit.Proc{
		{Pid: 1, Argv: []string{"/sbin/init"}},
		{Pid: 10, Argv: []string{"/usr/bin/conmon", "-b", "/w/cradle/state/containers/C"}},
		{Pid: 11, Argv: []string{"/usr/bin/conmon", "-b", "/other/cradle/state/containers/C"}}, // another daemon's
		{Pid: 12, Argv: []string{"sleep", "3600"}},
		{Pid: 13, Argv: []string{"runc", "--root", "/w/cradle/state/runtime/runc", "kill"}},
		{Pid: 14, Argv: []string{"sh"}},
		{Pid: 15, Argv: []string{"cat", "/w/cradle/state/x"}}, // names the dir but is no runtime process
	}
	cgroups := map[int][]string{
		12: parseCgroupPaths("4:memory:/parent/C\n0::/\n"),
		14: parseCgroupPaths("4:memory:/parent-other/C\n"),
	}
	got := processLeaks(ps, cgroups, "/w/cradle", "/parent")
	var pids []string
	for _, l := range got {
		pids = append(pids, strings.Fields(l.what)[1])
	}
	if !slices.Equal(pids, []string{"10", "12", "13"}) {
		t.Errorf("processLeaks = %v", got)
	}
	if !strings.Contains(got[1].what, "in cgroup /parent/C") {
		t.Errorf("cgroup reason missing: %q", got[1].what)
	}
}

func TestParseCgroupPaths(t *testing.T) {
	got := parseCgroupPaths("12:cpu,cpuacct:/a/b\n1:name=systemd:/c\n0::/d:with:colons\n")
	if !slices.Equal(got, []string{"/a/b", "/c", "/d:with:colons"}) {
		t.Errorf("parseCgroupPaths = %q", got)
	}
}

func TestHasIDRun(t *testing.T) {
	id := strings.Repeat("ab12", 16)
	for name, want := range map[string]bool{
		id: true, id + ".json": true, "cradle-conmon-" + id: true, "bench-" + id + "-eth0": true,
		strings.Repeat("a", 32): true, strings.Repeat("a", 31): false, "exits": false, "runc": false,
		strings.Repeat("A", 40): false, // IDs are lower case
	} {
		if got := hasIDRun(name); got != want {
			t.Errorf("hasIDRun(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestFileLeaks(t *testing.T) {
	id := strings.Repeat("c", 64)
	base := map[string]entry{
		"/r":           {dir: true},
		"/r/pods":      {dir: true, empty: true},
		"/r/cradle.db": {},
		"/s":           {dir: true},
	}
	now := map[string]entry{
		"/r":                         {dir: true},
		"/r/pods":                    {dir: true},
		"/r/pods/" + id + ".json":    {},
		"/r/cradle.db":               {},
		"/s":                         {dir: true},
		"/s/oci":                     {dir: true},
		"/s/oci/exits":               {dir: true, empty: true}, // scaffolding
		"/s/containers":              {dir: true},
		"/s/containers/" + id:        {dir: true},
		"/s/containers/" + id + "/a": {},
		"/s/containers/" + id + "/b": {dir: true, empty: true},
		"/s/stray":                   {},
	}
	got := fileLeaks(base, now, "/r")
	want := []leak{
		{"record", "/r/pods/" + id + ".json"},
		{"file", "/s/containers/" + id + "/ (dir, 2 entries below)"},
		{"file", "/s/stray"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("fileLeaks =\n%v\nwant\n%v", got, want)
	}
	if got := fileLeaks(base, base, "/r"); len(got) != 0 {
		t.Errorf("no change gave %v", got)
	}
}

func TestSnapshotSkipsImageStoreAndMounts(t *testing.T) {
	dir := t.TempDir()
	root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
	for _, d := range []string{"layers/x", "images", "pods", "containers/m/rootfs/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "images", "images.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(root, "containers/m/rootfs")
	snap, err := snapshot(root, state, []mountEntry{{point: rootfs}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for p := range snap {
		rel, _ := filepath.Rel(dir, p)
		got = append(got, rel)
	}
	slices.Sort(got)
	want := []string{"root", "root/containers", "root/containers/m", "root/containers/m/rootfs", "root/pods", "state"}
	if !slices.Equal(got, want) {
		t.Errorf("snapshot = %v, want %v", got, want)
	}
	if !snap[filepath.Join(root, "pods")].empty || snap[filepath.Join(root, "containers")].empty {
		t.Error("emptiness of dirs is wrong")
	}
}

func TestSubdirsAndReadNamesOfAbsentDirs(t *testing.T) {
	dir := t.TempDir()
	if got, err := subdirs(filepath.Join(dir, "absent")); err != nil || got != nil {
		t.Errorf("subdirs of absent = %v, %v", got, err)
	}
	if got, err := readNames(filepath.Join(dir, "absent")); err != nil || got != nil {
		t.Errorf("readNames of absent = %v, %v", got, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := subdirs(dir); !slices.Equal(got, []string{"a", "a/b"}) {
		t.Errorf("subdirs = %v", got)
	}
}

func TestFormatCensus(t *testing.T) {
	if got := formatCensus(nil); got != "census: 0 leaks\n" {
		t.Errorf("empty census = %q", got)
	}
	var leaks []leak
	for i := range maxListed + 3 {
		leaks = append(leaks, leak{"cgroup", "/sys/fs/cgroup/x/" + strings.Repeat("a", i+1)})
	}
	leaks = append(leaks, leak{"veth", "veth0 on bridge b"})
	got := formatCensus(leaks)
	for _, want := range []string{"census: 14 leaks\n", "LEAK veth       veth0 on bridge b\n", "... and 3 more cgroup leaks\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("census lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "LEAK cgroup"); n != maxListed {
		t.Errorf("%d cgroup lines listed, want %d", n, maxListed)
	}
}

func fakeSoaker(name string, scale time.Duration, done int, samples map[int]sample) *soaker {
	s := &soaker{name: name, done: done, wall: time.Duration(done) * 100 * time.Millisecond, samples: samples}
	for r := range numRPCs {
		for i := 1; i <= 100; i++ {
			s.lat[r] = append(s.lat[r], time.Duration(i)*scale)
		}
	}
	return s
}

func TestPrintResults(t *testing.T) {
	cps := []int{0, 500, 1000}
	crdl := fakeSoaker("cradle", time.Millisecond, 1000, map[int]sample{
		0:    {fds: 20, threads: 12, goroutines: 30, rssKiB: 30 * 1024, pssKiB: 28 * 1024},
		500:  {fds: 25, threads: 12, goroutines: 31, rssKiB: 31 * 1024, pssKiB: 29 * 1024},
		1000: {fds: 45, threads: 13, goroutines: 30, rssKiB: 40 * 1024, pssKiB: 29 * 1024},
	})
	crdl.failures = []failure{{lifecycle: 17, rpc: rpcStopContainer, err: errors.New("boom")}}
	ctrd := fakeSoaker("containerd", 2*time.Millisecond, 1000, map[int]sample{
		0:    {fds: 21, threads: 26, goroutines: -1, rssKiB: 48 * 1024, pssKiB: 46 * 1024},
		1000: {fds: 21, threads: 26, goroutines: -1, rssKiB: 49 * 1024, pssKiB: 47 * 1024},
	})
	var b bytes.Buffer
	printResults(&b, []*soaker{crdl, ctrd}, cps, limits{fds: 10, threads: 10, goroutines: 20, memPercent: 20})
	out := b.String()
	lines := strings.Split(out, "\n")
	has := func(prefix string, fields ...string) {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) && slices.Equal(strings.Fields(strings.TrimPrefix(l, prefix)), fields) {
				return
			}
		}
		t.Errorf("no line %q %q in:\n%s", prefix, fields, out)
	}
	has("lifecycles/s", "10.00", "10.00", "1.00")
	has("lifecycles completed", "1000/1001", "1000/1000", "-")
	has("RunPodSandbox p50", "50.0", "ms", "100", "ms", "0.50")
	has("RemovePodSandbox p99", "99.0", "ms", "198", "ms", "0.50")
	has("cradle", "fds", "20", "25", "45", "+25", "LEAK?")
	has("cradle", "RSS", "30.0", "MiB", "31.0", "MiB", "40.0", "MiB", "+33.3%", "LEAK?")
	has("cradle", "goroutines", "30", "31", "30", "+0", "ok")
	has("containerd", "goroutines", "-", "-", "-", "-", "-")
	has("containerd", "fds", "21", "-", "21", "+0", "ok")
	for _, want := range []string{"cradle: 1 failed lifecycles, 1 at StopContainer", "lifecycle 17, StopContainer: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// One runtime alone: no ratio column.
	b.Reset()
	printResults(&b, []*soaker{crdl}, cps, limits{})
	if strings.Contains(b.String(), "cradle/containerd") {
		t.Errorf("ratio column without containerd:\n%s", b.String())
	}
}
