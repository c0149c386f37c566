package stats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Detail is what a cgroup tells beyond CgroupStats: the figures of
// cadvisor's metrics (ListPodSandboxMetrics), pressure, and the processes
// inside. Every field is read where the kernel offers it and left zero
// (with its Has flag false) where it does not.
type Detail struct {
	CPUUserNanos, CPUSystemNanos    uint64
	CFSPeriods, CFSThrottledPeriods uint64
	CFSThrottledNanos               uint64

	Cache, MappedFile, KernelUsage uint64
	MaxUsage                       uint64
	HasMaxUsage                    bool // v2 has memory.peak only since Linux 5.19
	Failcnt                        uint64
	OOMKills                       uint64

	// The cgroup's configuration, as cadvisor's container_spec_* report it.
	CPUShares, CPUPeriod uint64
	CPUQuota             int64  // -1: no quota
	SwapLimit            uint64 // memory+swap (v1) or swap (v2) limit; 0: unlimited
	PidsMax              uint64 // 0: unlimited

	Procs ProcessStats

	// PSI is nil where the kernel keeps no pressure for this cgroup.
	CPUPressure, MemoryPressure, IOPressure *PSI

	IO []DeviceIO

	// Full tells that every figure was read. Stats calls need only
	// pressure and process counts (Procs without FDs and sockets), which is
	// all a light sample reads: the rest costs a dozen files and a walk of
	// every process's fds per cgroup, and only metrics calls use it.
	Full bool
}

// DeviceIO is block I/O of a cgroup on one device.
type DeviceIO struct {
	Major, Minor          uint64
	Device                string // /dev name; "" when the kernel names none
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// noQuota is what cpu.cfs_quota_us and cpu.max say when unlimited.
const noQuota = -1

// ReadDetail reads the Detail of the cgroup at cgroupsPath. Like Read, a
// cgroup that does not exist is ErrNotFound.
func (h Hierarchy) ReadDetail(cgroupsPath string) (Detail, error) {
	return h.readDetail(cgroupsPath, kvFiles{}, true)
}

func (h Hierarchy) readDetail(cgroupsPath string, kv kvFiles, full bool) (Detail, error) {
	var (
		d   Detail
		err error
	)
	switch {
	case !full:
		err = h.processCounts(cgroupsPath, &d)
	case h.V2:
		err = h.detailV2(cgroupsPath, &d, kv)
	default:
		err = h.detailV1(cgroupsPath, &d, kv)
	}
	if err != nil {
		return d, notFound(cgroupsPath, err)
	}
	d.Full = full
	if !h.PSI {
		return d, nil
	}
	// PSI lives in the unified tree only: on a hybrid host runc mirrors each
	// cgroup there, so the pressure of the same processes is readable.
	if d.CPUPressure, d.MemoryPressure, d.IOPressure, err = h.readPressure(cgroupsPath); err != nil {
		return d, err
	}
	return d, nil
}

func (h Hierarchy) unifiedDir(cgroupsPath string) (string, error) {
	rel, err := cgroupDir(cgroupsPath)
	if err != nil {
		return "", err
	}
	if h.V2 {
		return filepath.Join(h.Root, rel), nil
	}
	return filepath.Join(h.Root, "unified", rel), nil
}

func (h Hierarchy) readPressure(cgroupsPath string) (cpu, mem, io *PSI, err error) {
	dir, err := h.unifiedDir(cgroupsPath)
	if err != nil {
		return nil, nil, nil, err
	}
	out := [3]*PSI{}
	for i, name := range []string{"cpu.pressure", "memory.pressure", "io.pressure"} {
		p, err := readPSI(filepath.Join(dir, name))
		switch {
		case err == nil:
			out[i] = &p
		case errors.Is(err, fs.ErrNotExist):
			// No unified mirror, or a kernel without PSI: none is reported.
		default:
			return nil, nil, nil, err
		}
	}
	return out[0], out[1], out[2], nil
}

// processCounts is the light sample's Procs: processes and threads only.
func (h Hierarchy) processCounts(p string, d *Detail) (err error) {
	dir, threads, err := h.procsDir(p)
	if err != nil {
		return err
	}
	d.Procs, err = readProcesses(dir, threads, false)
	return err
}

// procsDir is the cgroup dir that lists the processes and its threads
// file: v1's pids controller where it is mounted, else cpuacct, which every
// v1 host has; v2's one dir.
func (h Hierarchy) procsDir(p string) (dir, threadsFile string, err error) {
	if h.V2 {
		dir, err = h.dir(p, "")
		return dir, "cgroup.threads", err
	}
	if dir, err = h.dir(p, "pids"); err != nil {
		return "", "", err
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, "tasks", nil
	}
	dir, err = h.dir(p, "cpuacct")
	return dir, "tasks", err
}

func (h Hierarchy) detailV1(p string, d *Detail, kv kvFiles) error {
	dirs := map[string]string{}
	for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio"} {
		dir, err := h.dir(p, ctrl)
		if err != nil {
			return err
		}
		dirs[ctrl] = dir
	}
	acct, err := readKV(filepath.Join(dirs["cpuacct"], "cpuacct.stat"))
	if err != nil {
		return err
	}
	// cpuacct.stat counts USER_HZ ticks, which Linux fixes at 100 per second.
	d.CPUUserNanos, d.CPUSystemNanos = acct["user"]*1e7, acct["system"]*1e7
	cpu, err := kv.read(filepath.Join(dirs["cpu"], "cpu.stat"))
	if err != nil {
		return err
	}
	d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = cpu["nr_periods"], cpu["nr_throttled"], cpu["throttled_time"]
	if d.CPUShares, err = readUint(filepath.Join(dirs["cpu"], "cpu.shares")); err != nil {
		return err
	}
	if d.CPUPeriod, err = readUint(filepath.Join(dirs["cpu"], "cpu.cfs_period_us")); err != nil {
		return err
	}
	if d.CPUQuota, err = readInt(filepath.Join(dirs["cpu"], "cpu.cfs_quota_us")); err != nil {
		return err
	}

	mem := dirs["memory"]
	st, err := kv.read(filepath.Join(mem, "memory.stat"))
	if err != nil {
		return err
	}
	d.Cache, d.MappedFile = st["total_cache"], st["total_mapped_file"]
	if d.MaxUsage, err = readUint(filepath.Join(mem, "memory.max_usage_in_bytes")); err != nil {
		return err
	}
	d.HasMaxUsage = true
	if d.Failcnt, err = readUint(filepath.Join(mem, "memory.failcnt")); err != nil {
		return err
	}
	if err := optional(&d.KernelUsage, filepath.Join(mem, "memory.kmem.usage_in_bytes")); err != nil {
		return err
	}
	oom, err := readKV(filepath.Join(mem, "memory.oom_control"))
	if err != nil {
		return err
	}
	d.OOMKills = oom["oom_kill"]
	if err := optional(&d.SwapLimit, filepath.Join(mem, "memory.memsw.limit_in_bytes")); err != nil {
		return err
	}
	if d.SwapLimit >= unlimited {
		d.SwapLimit = 0
	}

	if err := optionalMax(&d.PidsMax, filepath.Join(dirs["pids"], "pids.max")); err != nil {
		return err
	}
	procDir, threads, err := h.procsDir(p)
	if err != nil {
		return err
	}
	if d.Procs, err = readProcesses(procDir, threads, true); err != nil {
		return err
	}
	if d.IO, err = readBlkioV1(dirs["blkio"]); err != nil {
		return err
	}
	return nil
}

func (h Hierarchy) detailV2(p string, d *Detail, kv kvFiles) error {
	dir, err := h.dir(p, "")
	if err != nil {
		return err
	}
	cpu, err := kv.read(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return err
	}
	d.CPUUserNanos, d.CPUSystemNanos = cpu["user_usec"]*1000, cpu["system_usec"]*1000
	d.CFSPeriods, d.CFSThrottledPeriods, d.CFSThrottledNanos = cpu["nr_periods"], cpu["nr_throttled"], cpu["throttled_usec"]*1000
	if err := cpuMaxV2(dir, d); err != nil {
		return err
	}

	st, err := kv.read(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return err
	}
	d.Cache, d.MappedFile = st["file"], st["file_mapped"]
	if k, ok := st["kernel"]; ok { // Linux 5.18+
		d.KernelUsage = k
	} else {
		d.KernelUsage = st["kernel_stack"] + st["slab"] + st["sock"] + st["percpu"]
	}
	peak, err := readUint(filepath.Join(dir, "memory.peak"))
	switch {
	case err == nil:
		d.MaxUsage, d.HasMaxUsage = peak, true
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	ev, err := readKV(filepath.Join(dir, "memory.events"))
	if err != nil {
		return err
	}
	// v2 has no failcnt; hitting memory.max is the same event.
	d.Failcnt, d.OOMKills = ev["max"], ev["oom_kill"]
	if err := optionalMax(&d.SwapLimit, filepath.Join(dir, "memory.swap.max")); err != nil {
		return err
	}
	if err := optionalMax(&d.PidsMax, filepath.Join(dir, "pids.max")); err != nil {
		return err
	}
	if d.Procs, err = readProcesses(dir, "cgroup.threads", true); err != nil {
		return err
	}
	if d.IO, err = readIOStatV2(filepath.Join(dir, "io.stat")); err != nil {
		return err
	}
	return nil
}

// cpuMaxV2 reads "quota period" from cpu.max and converts cpu.weight to
// the v1 shares cadvisor reports, with the mapping runc uses the other way.
func cpuMaxV2(dir string, d *Detail) error {
	d.CPUQuota = noQuota
	data, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err == nil {
		q, per, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		if d.CPUPeriod, err = strconv.ParseUint(per, 10, 64); err != nil {
			return fmtErr(dir, "cpu.max", err)
		}
		if q != "max" {
			if d.CPUQuota, err = strconv.ParseInt(q, 10, 64); err != nil {
				return fmtErr(dir, "cpu.max", err)
			}
		}
	}
	w, err := readUint(filepath.Join(dir, "cpu.weight"))
	switch {
	case err == nil && w >= 1:
		d.CPUShares = 2 + (w-1)*262142/9999
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return nil
}

// optional reads a counter the kernel may not offer; absent reads as 0.
func optional(dst *uint64, file string) error {
	v, err := readUint(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	*dst = v
	return err
}

// optionalMax reads a limit file where "max" means unlimited (0).
func optionalMax(dst *uint64, file string) error {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	v := strings.TrimSpace(string(data))
	if v == "max" {
		*dst = 0
		return nil
	}
	if *dst, err = strconv.ParseUint(v, 10, 64); err != nil {
		return fmtErr(filepath.Dir(file), filepath.Base(file), err)
	}
	return nil
}

func readInt(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmtErr(filepath.Dir(file), filepath.Base(file), err)
	}
	return v, nil
}
