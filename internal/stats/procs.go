package stats

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcessStats counts what runs in a cgroup and its descendants.
type ProcessStats struct {
	Processes, Threads uint64
	FDs, Sockets       uint64
}

// readProcesses walks the cgroup tree at dir: cgroup.procs lists each
// cgroup's own processes only, and a pod's cgroup holds its containers'
// below it. threadsFile is v1's "tasks" or v2's "cgroup.threads". FDs and
// sockets are counted only with withFDs.
func readProcesses(dir, threadsFile string, withFDs bool) (ProcessStats, error) {
	var ps ProcessStats
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			// A child cgroup removed mid-walk is simply gone.
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		pids, err := readIDs(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		tids, err := readIDs(filepath.Join(p, threadsFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		ps.Processes += uint64(len(pids))
		ps.Threads += uint64(len(tids))
		for _, pid := range pids {
			if !withFDs {
				break
			}
			fds, socks := countFDs(pid)
			ps.FDs += fds
			ps.Sockets += socks
		}
		return nil
	})
	return ps, err
}

// countFDs counts a process's open files and, among them, sockets. A
// process that exits meanwhile counts nothing.
func countFDs(pid int) (fds, sockets uint64) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0
	}
	for _, e := range ents {
		fds++
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			sockets++
		}
	}
	return fds, sockets
}

func readIDs(file string) ([]int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		id, err := strconv.Atoi(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, id)
	}
	return out, sc.Err()
}
