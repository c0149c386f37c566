package main

import (
	"fmt"
	"path/filepath"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

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
	// The daemon's own PSS split into mapped files (its binary) and
	// anonymous memory (heap, stacks, runtime).
	daemonFileKiB, daemonAnonKiB int64
}

// runtimeProcs picks the runtime's processes out of ps: the daemon, its
// monitors (found by isMonitor, since they daemonize away from it) and the
// pause or init processes whose parent is one of those. App containers are
// the workload, not the runtime's cost, and are left out.
func runtimeProcs(ps []benchkit.Proc, daemonPid int, isMonitor func([]string) bool) (pids []int, monitors, pauses int) {
	children := map[int][]benchkit.Proc{}
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
			if isPause(c.Argv) && !seen[c.Pid] {
				add(c.Pid)
				pauses++
			}
		}
	}
	return pids, monitors, pauses
}

// measureOverhead sums the PSS of the runtime's processes now.
func measureOverhead(d *benchkit.Daemon) (overhead, error) {
	ps, err := benchkit.ReadProcs()
	if err != nil {
		return overhead{}, err
	}
	pids, monitors, pauses := runtimeProcs(ps, d.Pid(), d.IsMonitor)
	o := overhead{daemon: 1, monitors: monitors, pauses: pauses}
	for _, pid := range pids {
		r, err := benchkit.ReadRollup(pid)
		if err != nil {
			if pid == d.Pid() {
				return overhead{}, d.Explain(fmt.Errorf("PSS of %s: %w", d.Name, err))
			}
			continue // exited between the listing and now
		}
		o.pssKiB += r.PssKiB
		if pid == d.Pid() {
			o.daemonFileKiB, o.daemonAnonKiB = r.PssFileKiB, r.PssAnonKiB
		}
	}
	return o, nil
}
