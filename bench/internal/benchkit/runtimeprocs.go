package benchkit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// IsPause tells a pod's pause or init process apart from the app container
// (which is the workload, not runtime overhead): containerd's sandbox image
// runs /pause, cradle runs catatonit for pods that share a PID namespace.
func IsPause(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	return argv[0] == "/pause" || filepath.Base(argv[0]) == "catatonit"
}

// RuntimeProcs picks the runtime's processes out of ps: the daemon, its
// monitors (found by isMonitor, since they daemonize away from it) and the
// pause or init processes whose parent is one of those. App containers are
// the workload, not the runtime's cost, and are left out.
func RuntimeProcs(ps []Proc, daemonPid int, isMonitor func([]string) bool) (pids []int, monitors, pauses int) {
	children := map[int][]Proc{}
	for _, p := range ps {
		children[p.PPid] = append(children[p.PPid], p)
	}
	seen := map[int]bool{}
	add := func(pid int) {
		if !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	add(daemonPid)
	roots := []int{daemonPid}
	for _, p := range ps {
		if p.Pid != daemonPid && isMonitor(p.Argv) {
			add(p.Pid)
			monitors++
			roots = append(roots, p.Pid)
		}
	}
	for _, r := range roots {
		for _, c := range children[r] {
			if IsPause(c.Argv) && !seen[c.Pid] {
				add(c.Pid)
				pauses++
			}
		}
	}
	return pids, monitors, pauses
}

// CPUTicks is the CPU time of a process and of the children it has reaped
// (utime + stime + cutime + cstime of /proc/PID/stat), in clock ticks: a
// runtime's runc and CNI plugin runs end up in the cutime of whoever waits
// for them.
func CPUTicks(pid int) (int64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	var sum int64
	for _, s := range f[11:15] { // fields 14-17 of stat(5)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed stat %q", stat)
		}
		sum += v
	}
	return sum, nil
}

// ClockTick is the length of a clock tick of /proc/PID/stat (USER_HZ,
// 100 on Linux).
const ClockTick = 10 * time.Millisecond
