package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// proc is one process of /proc as far as the memory accounting needs it.
type proc struct {
	pid, ppid int
	argv      []string
}

// readProcs lists every process; those that exit while listed are skipped.
func readProcs() ([]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var ps []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		ppid, err := parsePPID(stat)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		ps = append(ps, proc{pid: pid, ppid: ppid, argv: splitCmdline(cmdline)})
	}
	return ps, nil
}

// parsePPID reads field 4 of /proc/PID/stat; the command name in field 2 may
// hold spaces and parentheses, so the fields count from the last ')'.
func parsePPID(stat []byte) (int, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return strconv.Atoi(f[1])
}

func splitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// isPause tells a pod's pause or init process apart from the app container
// (which is the workload, not runtime overhead): containerd's sandbox image
// runs /pause, cradle runs catatonit for pods that share a PID namespace.
func isPause(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	return argv[0] == "/pause" || filepath.Base(argv[0]) == "catatonit"
}

// overhead is what a runtime costs in memory: which processes and their
// summed PSS.
type overhead struct {
	daemon, monitors, pauses int
	pssKiB                   int64
}

// runtimeProcs picks the runtime's processes out of ps: the daemon, its
// monitors (found by isMonitor, since they daemonize away from it) and the
// pause or init processes whose parent is one of those. App containers are
// the workload, not the runtime's cost, and are left out.
func runtimeProcs(ps []proc, daemonPid int, isMonitor func([]string) bool) (pids []int, monitors, pauses int) {
	children := map[int][]proc{}
	for _, p := range ps {
		children[p.ppid] = append(children[p.ppid], p)
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
		if p.pid != daemonPid && isMonitor(p.argv) {
			add(p.pid)
			monitors++
			roots = append(roots, p.pid)
		}
	}
	for _, r := range roots {
		for _, c := range children[r] {
			if isPause(c.argv) && !seen[c.pid] {
				add(c.pid)
				pauses++
			}
		}
	}
	return pids, monitors, pauses
}

// measureOverhead sums the PSS of the runtime's processes now.
func measureOverhead(d *daemon) (overhead, error) {
	ps, err := readProcs()
	if err != nil {
		return overhead{}, err
	}
	pids, monitors, pauses := runtimeProcs(ps, d.Pid(), d.isMonitor)
	o := overhead{daemon: 1, monitors: monitors, pauses: pauses}
	for _, pid := range pids {
		kib, err := pssKiB(pid)
		if err != nil {
			if pid == d.Pid() {
				return overhead{}, d.Explain(fmt.Errorf("PSS of %s: %w", d.Name, err))
			}
			continue // exited between the listing and now
		}
		o.pssKiB += kib
	}
	return o, nil
}

// pssKiB is the process's proportional set size from smaps_rollup: shared
// pages are split among the processes that map them, so summing over
// processes does not count a shared library or binary twice.
func pssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parsePss(f)
}

func parsePss(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "Pss:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no Pss line")
}
