package main

import (
	"fmt"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// overhead is what a runtime costs in memory: which processes and their
// summed PSS.
type overhead struct {
	daemon, monitors, pauses int
	pssKiB                   int64
	// The daemon's own PSS split into mapped files (its binary) and
	// anonymous memory (heap, stacks, runtime).
	daemonFileKiB, daemonAnonKiB int64
}

// measureOverhead sums the PSS of the runtime's processes now.
func measureOverhead(d *benchkit.Daemon) (overhead, error) {
	ps, err := benchkit.ReadProcs()
	if err != nil {
		return overhead{}, err
	}
	pids, monitors, pauses := benchkit.RuntimeProcs(ps, d.Pid(), d.IsMonitor)
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
