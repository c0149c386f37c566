package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// The census: what cradle must not keep once every pod it ran is removed.
// It is the bench's own, kept simple: it reads the host, it does not know
// cradle's records.

// leak is one thing left behind.
type leak struct {
	kind, what string
}

// censusScope is where one cradle daemon keeps things.
type censusScope struct {
	dir          string // the daemon's dir: root, state, config and log below it
	root, state  string
	cgroupParent string // the pods' cgroup_parent
	bridge       string
	ipamDir      string // host-local's leases of the pod network: <dataDir>/<network name>
	// baseline is the tree under root and state (image store excluded)
	// before the first pod: what is there at the end and was not then, and
	// is no empty scaffolding, is left behind.
	baseline map[string]entry
}

// entry is a path of a tree snapshot.
type entry struct {
	dir   bool
	empty bool // a dir without entries
}

// imageStore is what of root the census skips: the pulled image, which the
// soak keeps.
var imageStore = []string{"images", "layers"}

// takeCensus lists what the daemon left behind now.
func takeCensus(c censusScope) ([]leak, error) {
	var leaks []leak
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	leaks = append(leaks, mountLeaks(mounts, []string{c.root, c.state})...)

	links, err := readNames(filepath.Join("/sys/class/net", c.bridge, "brif"))
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		leaks = append(leaks, leak{"veth", l + " on bridge " + c.bridge})
	}
	leases, err := readNames(c.ipamDir)
	if err != nil {
		return nil, err
	}
	leaks = append(leaks, ipamLeaks(leases, c.ipamDir)...)

	ps, err := benchkit.ReadProcs()
	if err != nil {
		return nil, err
	}
	cgroups := map[int][]string{}
	for _, p := range ps {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid)); err == nil {
			cgroups[p.Pid] = parseCgroupPaths(string(b))
		}
	}
	leaks = append(leaks, processLeaks(ps, cgroups, c.dir, c.cgroupParent)...)

	for _, h := range cgroupHierarchies(mounts) {
		dirs, err := subdirs(filepath.Join(h, c.cgroupParent))
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			leaks = append(leaks, leak{"cgroup", filepath.Join(h, c.cgroupParent, d)})
		}
	}

	now, err := snapshot(c.root, c.state, mounts)
	if err != nil {
		return nil, err
	}
	leaks = append(leaks, fileLeaks(c.baseline, now, c.root)...)
	return leaks, nil
}

// readMounts parses this process's mountinfo (the daemons share its mount
// namespace).
func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// mountEntry is one line of mountinfo.
type mountEntry struct {
	point, fstype, source string
}

// parseMountinfo reads /proc/PID/mountinfo.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	infos, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, err
	}
	out := make([]mountEntry, 0, len(infos))
	for _, i := range infos {
		out = append(out, mountEntry{point: i.Mountpoint, fstype: i.FSType, source: i.Source})
	}
	return out, nil
}

// under tells whether p is dir or below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// mountLeaks are the mounts below dirs: pinned namespaces (nsfs), rootfs
// overlays, shm tmpfs, whatever else.
func mountLeaks(mounts []mountEntry, dirs []string) []leak {
	var out []leak
	for _, m := range mounts {
		if !slices.ContainsFunc(dirs, func(d string) bool { return under(m.point, d) && m.point != d }) {
			continue
		}
		kind := "mount"
		if m.fstype == "nsfs" {
			kind = "ns pin"
			if filepath.Base(m.point) == "net" {
				kind = "netns pin"
			}
		}
		out = append(out, leak{kind, fmt.Sprintf("%s (%s)", m.point, m.fstype)})
	}
	return out
}

// ipamLeaks are host-local's leases: one file per address, named by it,
// beside its lock and its last_reserved_ip.N cursors.
func ipamLeaks(names []string, dir string) []leak {
	var out []leak
	for _, n := range names {
		if n == "lock" || strings.HasPrefix(n, "last_reserved_ip.") {
			continue
		}
		out = append(out, leak{"ipam", filepath.Join(dir, n)})
	}
	return out
}

// parseCgroupPaths reads /proc/PID/cgroup ("ID:controllers:path" lines)
// into its paths.
func parseCgroupPaths(s string) []string {
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out = append(out, parts[2])
		}
	}
	return out
}

// monitorNames are the programs cradle runs for pods.
var monitorNames = []string{"conmon", "runc", "catatonit"}

// processLeaks are processes in the pods' cgroup parent (workloads, pod
// inits, conmons moved beside their containers) and conmon/runc/catatonit
// processes naming the daemon's dir.
func processLeaks(ps []benchkit.Proc, cgroups map[int][]string, dir, cgroupParent string) []leak {
	var out []leak
	for _, p := range ps {
		why := ""
		if i := slices.IndexFunc(cgroups[p.Pid], func(c string) bool { return strings.HasPrefix(c, cgroupParent+"/") }); i >= 0 {
			why = "in cgroup " + cgroups[p.Pid][i]
		} else if len(p.Argv) > 0 && slices.Contains(monitorNames, filepath.Base(p.Argv[0])) &&
			slices.ContainsFunc(p.Argv, func(a string) bool { return strings.Contains(a, dir+"/") }) {
			why = "naming " + dir
		}
		if why != "" {
			out = append(out, leak{"process", fmt.Sprintf("pid %d %s %s", p.Pid, shortArgv(p.Argv), why)})
		}
	}
	return out
}

// shortArgv is a command line cut to a readable length.
func shortArgv(argv []string) string {
	s := strings.Join(argv, " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return strconv.Quote(s)
}

// cgroupHierarchies are the mount points of cgroup (v1, one per controller
// set, named ones included) and cgroup2 hierarchies.
func cgroupHierarchies(mounts []mountEntry) []string {
	var out []string
	for _, m := range mounts {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			if !slices.Contains(out, m.point) {
				out = append(out, m.point)
			}
		}
	}
	return out
}

// subdirs are the directories below dir, relative, parents first; an
// absent dir has none.
func subdirs(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if p != dir && e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

// readNames lists a directory; an absent one is empty.
func readNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// snapshot lists every path below root and state but the image store and
// what is below a mount point (a leaked rootfs is one mount, not the image's
// files).
func snapshot(root, state string, mounts []mountEntry) (map[string]entry, error) {
	points := map[string]bool{}
	for _, m := range mounts {
		points[m.point] = true
	}
	out := map[string]entry{}
	for _, top := range []string{root, state} {
		err := filepath.WalkDir(top, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while we walked
				}
				return err
			}
			if top == root && slices.ContainsFunc(imageStore, func(s string) bool { return p == filepath.Join(root, s) }) {
				return fs.SkipDir
			}
			en := entry{dir: e.IsDir()}
			if en.dir && points[p] && p != top {
				out[p] = en
				return fs.SkipDir
			}
			if en.dir {
				ents, err := os.ReadDir(p)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				en.empty = len(ents) == 0
			}
			out[p] = en
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fileLeaks compares the tree now with the baseline. A new directory named
// by an ID (a run of 32 or more hex digits, as cradle's pod and container
// IDs) is one leak with its content; a new file elsewhere is one; a new
// directory that is no ID's and holds no leak is scaffolding made on first
// use (exits/, attach/), not a leak.
func fileLeaks(baseline, now map[string]entry, root string) []leak {
	paths := make([]string, 0, len(now))
	for p := range now {
		if _, ok := baseline[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths) // parents before their content
	var out []leak
	var leakedDir string
	for _, p := range paths {
		if leakedDir != "" && under(p, leakedDir) {
			continue
		}
		e := now[p]
		kind := "file"
		if under(p, filepath.Join(root, "pods")) || under(p, filepath.Join(root, "containers")) {
			kind = "record"
		}
		switch {
		case e.dir && hasIDRun(filepath.Base(p)):
			leakedDir = p
			n := 0
			for q := range now {
				if q != p && under(q, p) {
					n++
				}
			}
			out = append(out, leak{kind, fmt.Sprintf("%s/ (dir, %d entries below)", p, n)})
		case e.dir:
			// scaffolding; what it holds is judged on its own
		default:
			out = append(out, leak{kind, p})
		}
	}
	return out
}

// hasIDRun tells whether name holds 32 or more hex digits in a row.
func hasIDRun(name string) bool {
	run := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') {
			run++
			if run >= 32 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// maxListed bounds the leaks printed per kind.
const maxListed = 10

// formatCensus renders the census: "census: 0 leaks", or the count and
// each leak, at most maxListed of a kind.
func formatCensus(leaks []leak) string {
	if len(leaks) == 0 {
		return "census: 0 leaks\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "census: %d leaks\n", len(leaks))
	perKind := map[string]int{}
	for _, l := range leaks {
		perKind[l.kind]++
		if n := perKind[l.kind]; n <= maxListed {
			fmt.Fprintf(&b, "  LEAK %-10s %s\n", l.kind, l.what)
		}
	}
	kinds := make([]string, 0, len(perKind))
	for k := range perKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		if n := perKind[k]; n > maxListed {
			fmt.Fprintf(&b, "  ... and %d more %s leaks\n", n-maxListed, k)
		}
	}
	return b.String()
}
