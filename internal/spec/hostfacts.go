package spec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// HostFacts are properties of the node that shape every spec. They are
// detected once, at daemon start, by DetectHostFacts.
type HostFacts struct {
	// Capabilities is the daemon's bounding set ("CAP_CHOWN", ...), in
	// kernel order. A container can never hold more: privileged containers
	// get exactly this set.
	Capabilities []string
	// OOMScoreAdj is the daemon's own oom_score_adj. Without
	// CAP_SYS_RESOURCE a child cannot go below it, so requests are raised
	// to it.
	OOMScoreAdj int
	AppArmor    bool
	SELinux     bool
	Seccomp     bool
	CgroupV2    bool
	// Hugetlb says the hugetlb cgroup controller is usable; without it,
	// hugepage limits are left out rather than failing every container
	// (kubelet sends them for every page size the kernel has).
	Hugetlb bool
	// HugePageSizes are the kernel's page sizes in CRI form ("2MB", "1GB").
	HugePageSizes []string
	// SwapAccounting says memory+swap limits can be set.
	SwapAccounting bool
	// RecursiveReadOnly says the kernel has mount_setattr (5.12+), needed
	// for recursive read-only mounts.
	RecursiveReadOnly bool
	// Hostname is the node's name, the HOSTNAME of host-network pods.
	Hostname string
}

func (h *HostFacts) validate() error {
	if len(h.Capabilities) == 0 {
		return errdefs.FailedPrecondition("host facts have no capability set: run DetectHostFacts first")
	}
	for _, c := range h.Capabilities {
		if _, ok := capIndex[c]; !ok {
			return errdefs.FailedPrecondition("host facts name an unknown capability %q", c)
		}
	}
	return nil
}

// DetectHostFacts reads the facts of the running host and process.
func DetectHostFacts() (HostFacts, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return HostFacts{}, fmt.Errorf("uname: %w", err)
	}
	hostname, err := os.Hostname()
	if err != nil {
		return HostFacts{}, fmt.Errorf("hostname: %w", err)
	}
	return detectFrom("/proc", "/sys", unix.ByteSliceToString(uts.Release[:]), hostname)
}

// detectFrom reads facts below the given proc and sys roots, so tests can
// point it at a fake tree.
func detectFrom(proc, sys, release, hostname string) (HostFacts, error) {
	h := HostFacts{Hostname: hostname}
	var err error
	status, err := os.ReadFile(filepath.Join(proc, "self/status"))
	if err != nil {
		return h, fmt.Errorf("read process status: %w", err)
	}
	if h.Capabilities, err = boundingSet(status); err != nil {
		return h, err
	}
	h.Seccomp = bytes.Contains(status, []byte("\nSeccomp:"))

	adj, err := os.ReadFile(filepath.Join(proc, "self/oom_score_adj"))
	if err != nil {
		return h, fmt.Errorf("read oom_score_adj: %w", err)
	}
	if h.OOMScoreAdj, err = strconv.Atoi(strings.TrimSpace(string(adj))); err != nil {
		return h, fmt.Errorf("parse oom_score_adj %q: %w", adj, err)
	}

	aa, err := os.ReadFile(filepath.Join(sys, "module/apparmor/parameters/enabled"))
	h.AppArmor = err == nil && strings.HasPrefix(string(aa), "Y")
	h.SELinux = exists(filepath.Join(sys, "fs/selinux/enforce"))

	cg := filepath.Join(sys, "fs/cgroup")
	controllers, err := os.ReadFile(filepath.Join(cg, "cgroup.controllers"))
	h.CgroupV2 = err == nil
	if h.CgroupV2 {
		h.Hugetlb = slices.Contains(strings.Fields(string(controllers)), "hugetlb")
		h.SwapAccounting = swapFileV2(proc, cg)
	} else {
		h.Hugetlb = exists(filepath.Join(cg, "hugetlb"))
		h.SwapAccounting = exists(filepath.Join(cg, "memory/memory.memsw.limit_in_bytes"))
	}
	if h.HugePageSizes, err = hugePageSizes(filepath.Join(sys, "kernel/mm/hugepages")); err != nil {
		return h, err
	}
	h.RecursiveReadOnly = kernelAtLeast(release, 5, 12)
	return h, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// boundingSet parses CapBnd from /proc/<pid>/status. Bits beyond the
// capabilities this package knows are ignored: nothing could ask for them.
func boundingSet(status []byte) ([]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapBnd %q: %w", v, err)
		}
		return capsFromMask(mask), nil
	}
	return nil, errors.New("process status has no CapBnd line")
}

// swapFileV2 reports whether memory.swap.max exists in a non-root cgroup:
// the root cgroup never has it, so look where this process lives first.
func swapFileV2(proc, cgroupRoot string) bool {
	if b, err := os.ReadFile(filepath.Join(proc, "self/cgroup")); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok && p != "/" {
				dir := filepath.Join(cgroupRoot, filepath.Clean("/"+p))
				if exists(filepath.Join(dir, "memory.swap.max")) ||
					exists(filepath.Join(filepath.Dir(dir), "memory.swap.max")) {
					return true
				}
			}
		}
	}
	entries, _ := os.ReadDir(cgroupRoot)
	for _, e := range entries {
		if e.IsDir() && exists(filepath.Join(cgroupRoot, e.Name(), "memory.swap.max")) {
			return true
		}
	}
	return false
}

// hugePageSizes lists hugepages-<n>kB directories as CRI page sizes.
func hugePageSizes(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list hugepage sizes: %w", err)
	}
	var sizes []string
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(n, "kB"), 10, 64)
		if err != nil || !strings.HasSuffix(n, "kB") {
			continue
		}
		sizes = append(sizes, pageSizeName(kb))
	}
	return sizes, nil
}

// pageSizeName writes a size in kB with the largest 1024-based unit that
// divides it exactly, the form kubelet uses: 2048 → "2MB", 64 → "64KB".
func pageSizeName(kb uint64) string {
	units := []string{"KB", "MB", "GB", "TB", "PB"}
	i := 0
	for i < len(units)-1 && kb >= 1024 && kb%1024 == 0 {
		kb /= 1024
		i++
	}
	return strconv.FormatUint(kb, 10) + units[i]
}

// kernelAtLeast compares the leading "major.minor" of a kernel release.
func kernelAtLeast(release string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(release, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
