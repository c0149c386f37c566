package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// CgroupStats is one reading of a container's cgroup.
type CgroupStats struct {
	CPUUsageNanos   uint64 // cumulative CPU time
	MemoryUsage     uint64 // includes page cache
	WorkingSet      uint64 // usage minus inactive file cache: what the OOM killer weighs
	RSS             uint64 // anonymous memory
	PageFaults      uint64
	MajorPageFaults uint64
	MemoryLimit     uint64 // 0: unlimited
	Swap            uint64
	HasSwap         bool // the kernel accounts swap for this cgroup
}

// unlimited is above any real limit: v1 reports "no limit" as a page-aligned
// int64 maximum.
const unlimited = uint64(1) << 62

// Hierarchy reads cgroup files under one mount root: /sys/fs/cgroup with
// either one v1 mount per controller below it or the v2 unified tree.
type Hierarchy struct {
	Root string
	V2   bool
	// PSI tells the kernel keeps pressure stall information for cgroups:
	// it has PSI and a unified tree (the whole hierarchy, or a hybrid
	// host's <root>/unified, where runc mirrors every cgroup).
	PSI bool
}

// DetectHierarchy inspects root: a cgroup.controllers file at the top means
// the unified (v2) hierarchy owns it. A hybrid host (v1 controllers plus a
// controller-less v2 tree at <root>/unified) reads as v1, which is where
// its CPU and memory accounting lives.
func DetectHierarchy(root string) Hierarchy {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	h := Hierarchy{Root: root, V2: err == nil}
	unified := root
	if !h.V2 {
		unified = filepath.Join(root, "unified")
	}
	_, errU := os.Stat(filepath.Join(unified, "cgroup.controllers"))
	_, errP := os.Stat("/proc/pressure/cpu")
	h.PSI = errU == nil && errP == nil
	return h
}

// dir resolves a runtime-spec cgroupsPath (a cgroupfs path, or the systemd
// driver's "slice:prefix:name") to its directory for controller ctrl.
func (h Hierarchy) dir(cgroupsPath, ctrl string) (string, error) {
	rel, err := cgroupDir(cgroupsPath)
	if err != nil {
		return "", err
	}
	if h.V2 {
		return filepath.Join(h.Root, rel), nil
	}
	return filepath.Join(h.Root, ctrl, rel), nil
}

// cgroupDir turns a cgroupsPath into a path relative to a hierarchy root,
// expanding systemd's "a-b.slice" into "a.slice/a-b.slice" the way runc does.
// A bare slice name is the systemd driver's form of a pod's cgroup parent.
func cgroupDir(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		if strings.Contains(p, "..") {
			return "", errdefs.InvalidArgument("cgroups path %q escapes the hierarchy", p)
		}
		return path.Clean(p), nil
	}
	if strings.HasSuffix(p, ".slice") && !strings.ContainsAny(p, ":/") {
		return expandSlice(p)
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 || !strings.HasSuffix(parts[0], ".slice") || parts[2] == "" || strings.ContainsAny(parts[1]+parts[2], "/") {
		return "", errdefs.InvalidArgument("cgroups path %q is neither absolute nor slice:prefix:name", p)
	}
	slice, err := expandSlice(parts[0])
	if err != nil {
		return "", errdefs.InvalidArgument("cgroups path %q: malformed slice name", p)
	}
	unit := parts[2]
	if !strings.HasSuffix(unit, ".slice") {
		if parts[1] != "" {
			unit = parts[1] + "-" + unit
		}
		unit += ".scope"
	}
	return path.Join(slice, unit), nil
}

// expandSlice turns "a-b.slice" into "/a.slice/a-b.slice"; "-.slice" is the root.
func expandSlice(name string) (string, error) {
	slice := "/"
	if name == "-.slice" {
		return slice, nil
	}
	prefix := ""
	for _, comp := range strings.Split(strings.TrimSuffix(name, ".slice"), "-") {
		if comp == "" {
			return "", errdefs.InvalidArgument("malformed slice name %q", name)
		}
		prefix += comp
		slice = path.Join(slice, prefix+".slice")
		prefix += "-"
	}
	return slice, nil
}

// Read samples the cgroup at cgroupsPath. A cgroup that does not exist
// (the container is not running) is ErrNotFound.
func (h Hierarchy) Read(cgroupsPath string) (CgroupStats, error) {
	var (
		s   CgroupStats
		err error
	)
	if h.V2 {
		err = h.readV2(cgroupsPath, &s, kvFiles{})
	} else {
		err = h.readV1(cgroupsPath, &s, kvFiles{})
	}
	return s, notFound(cgroupsPath, err)
}

// CgroupSample is a cgroup's stats and its details, read together.
type CgroupSample struct {
	Stats  CgroupStats
	Detail Detail
	// DetailErr is why the details could not be read; the stats stand.
	DetailErr error
}

// Sample reads the cgroup's stats and its details in one pass: files both
// need (memory.stat, cpu.stat) are read once; without full, only the light
// details (see Detail.Full). A cgroup that does not exist is ErrNotFound.
func (h Hierarchy) Sample(cgroupsPath string, full bool) (CgroupSample, error) {
	var (
		s   CgroupSample
		err error
	)
	kv := kvFiles{}
	if h.V2 {
		err = h.readV2(cgroupsPath, &s.Stats, kv)
	} else {
		err = h.readV1(cgroupsPath, &s.Stats, kv)
	}
	if err != nil {
		return CgroupSample{}, notFound(cgroupsPath, err)
	}
	s.Detail, s.DetailErr = h.readDetail(cgroupsPath, kv, full)
	return s, nil
}

// kvFiles holds the "key value" files one sample has parsed, by path.
type kvFiles map[string]map[string]uint64

func (k kvFiles) read(file string) (map[string]uint64, error) {
	if m, ok := k[file]; ok {
		return m, nil
	}
	m, err := readKV(file)
	if err == nil {
		k[file] = m
	}
	return m, err
}

// notFound turns a missing cgroup file into ErrNotFound: the cgroup is gone.
func notFound(cgroupsPath string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("cgroup %s: %v", cgroupsPath, err)
	}
	return err
}

func fmtErr(dir, name string, err error) error {
	return fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
}

func (h Hierarchy) readV1(p string, s *CgroupStats, kv kvFiles) error {
	cpu, err := h.dir(p, "cpuacct")
	if err != nil {
		return err
	}
	mem, err := h.dir(p, "memory")
	if err != nil {
		return err
	}
	if s.CPUUsageNanos, err = readUint(filepath.Join(cpu, "cpuacct.usage")); err != nil {
		return err
	}
	if s.MemoryUsage, err = readUint(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return err
	}
	st, err := kv.read(filepath.Join(mem, "memory.stat"))
	if err != nil {
		return err
	}
	// The total_ counters include descendants; the plain ones do not.
	s.RSS = st["total_rss"]
	s.PageFaults, s.MajorPageFaults = st["total_pgfault"], st["total_pgmajfault"]
	s.WorkingSet = sub(s.MemoryUsage, st["total_inactive_file"])
	if lim := st["hierarchical_memory_limit"]; lim < unlimited {
		s.MemoryLimit = lim
	}
	// memsw exists only when the kernel accounts swap (swapaccount=1).
	memsw, err := readUint(filepath.Join(mem, "memory.memsw.usage_in_bytes"))
	switch {
	case err == nil:
		s.Swap, s.HasSwap = sub(memsw, s.MemoryUsage), true
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return nil
}

func (h Hierarchy) readV2(p string, s *CgroupStats, kv kvFiles) error {
	dir, err := h.dir(p, "")
	if err != nil {
		return err
	}
	cpu, err := kv.read(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	s.CPUUsageNanos = cpu["usage_usec"] * 1000
	if s.MemoryUsage, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return err
	}
	st, err := kv.read(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	s.RSS = st["anon"]
	s.PageFaults, s.MajorPageFaults = st["pgfault"], st["pgmajfault"]
	s.WorkingSet = sub(s.MemoryUsage, st["inactive_file"])
	lim, err := os.ReadFile(filepath.Join(dir, "memory.max"))
	if err != nil {
		return err
	}
	if v := strings.TrimSpace(string(lim)); v != "max" {
		if s.MemoryLimit, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("cgroup %s: memory.max: %w", p, err)
		}
	}
	swap, err := readUint(filepath.Join(dir, "memory.swap.current"))
	switch {
	case err == nil:
		s.Swap, s.HasSwap = swap, true
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return nil
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func readUint(file string) (uint64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// readKV parses "key value" lines (memory.stat, cpu.stat).
func readKV(file string) (map[string]uint64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", file, k, err)
		}
		out[k] = n
	}
	return out, sc.Err()
}
