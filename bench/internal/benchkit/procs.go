package benchkit

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Proc is one process of /proc as far as the benchmarks need it.
type Proc struct {
	Pid, PPid int
	Argv      []string
}

// ReadProcs lists every process; those that exit while listed are skipped.
func ReadProcs() ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var ps []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		ppid, err := ParsePPID(stat)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		ps = append(ps, Proc{Pid: pid, PPid: ppid, Argv: SplitCmdline(cmdline)})
	}
	return ps, nil
}

// ParsePPID reads field 4 of /proc/PID/stat; the command name in field 2 may
// hold spaces and parentheses, so the fields count from the last ')'.
func ParsePPID(stat []byte) (int, error) {
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

// SplitCmdline splits /proc/PID/cmdline into arguments.
func SplitCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// Rollup is the memory of a process from /proc/PID/smaps_rollup, in KiB.
type Rollup struct {
	RssKiB, PssKiB int64
	// PssFileKiB is the part of PSS that maps files (a daemon's own
	// binary, mostly), PssAnonKiB the heap, stacks and runtime; 0 on
	// kernels without these lines.
	PssFileKiB, PssAnonKiB int64
}

// ReadRollup reads the process's smaps_rollup. PSS splits shared pages
// among the processes that map them, so summing over processes does not
// count a shared library or binary twice.
func ReadRollup(pid int) (Rollup, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Rollup{}, err
	}
	defer f.Close()
	return ParseRollup(f)
}

// ParseRollup reads the Rss and Pss lines of smaps_rollup; a missing Pss
// line is an error (Rss is always there when Pss is).
func ParseRollup(r io.Reader) (Rollup, error) {
	var out Rollup
	havePss := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "Rss:":
			dst = &out.RssKiB
		case "Pss:":
			dst, havePss = &out.PssKiB, true
		case "Pss_File:":
			dst = &out.PssFileKiB
		case "Pss_Anon:":
			dst = &out.PssAnonKiB
		default:
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return Rollup{}, fmt.Errorf("smaps_rollup %q: %w", sc.Text(), err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return Rollup{}, err
	}
	if !havePss {
		return Rollup{}, fmt.Errorf("no Pss line")
	}
	return out, nil
}

// KillMonitors SIGKILLs, by pid, the monitors the daemon left behind (after
// a failed teardown), so no shim or conmon outlives the benchmark.
func KillMonitors(d *Daemon) {
	if d.IsMonitor == nil {
		return
	}
	ps, err := ReadProcs()
	if err != nil {
		return
	}
	for _, p := range ps {
		if d.IsMonitor(p.Argv) {
			fmt.Fprintf(os.Stderr, "%s left monitor pid %d running: SIGKILL\n", d.Name, p.Pid)
			_ = unix.Kill(p.Pid, unix.SIGKILL)
		}
	}
}
