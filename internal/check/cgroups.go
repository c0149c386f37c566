package check

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/oci"
)

// defaultCgroupParent is where containers of pods without a cgroup_parent
// live with the cgroupfs driver (spec.cgroupsPath).
const defaultCgroupParent = "/cradle"

// cgroupOrphans: the container and conmon cgroups of IDs that this state
// dir has a trace of but no record. Cgroups are shared by every daemon on
// the host, so a cgroup is only claimed through such a trace: a name alone
// could be another cradle's.
func cgroupOrphans(inv *inventory) []Finding {
	var want []string
	for id := range inv.ourIDs {
		if id != "" && !inv.known(id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil
	}
	found := map[string][]string{} // cgroup path → dirs in each hierarchy
	var order []string
	for _, mnt := range inv.cgroups {
		_ = filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			name := d.Name()
			id, conmon := strings.CutPrefix(name, oci.MonitorCgroupPrefix)
			if !slices.Contains(want, id) || p == mnt {
				return nil
			}
			rel := "/" + filepath.ToSlash(mustRel(mnt, p))
			parent := path.Dir(rel)
			if !conmon && parent != defaultCgroupParent && !exists(filepath.Join(filepath.Dir(p), oci.MonitorCgroupPrefix+id)) {
				return nil
			}
			if _, ok := found[rel]; !ok {
				order = append(order, rel)
			}
			found[rel] = append(found[rel], p)
			return filepath.SkipDir
		})
	}
	var out []Finding
	for _, rel := range order {
		dirs := found[rel]
		n := 0
		for _, d := range dirs {
			n = max(n, len(cgroupPids(d)))
		}
		procDir := inv.cfg.ProcDir
		out = append(out, Finding{Kind: "cgroup", Object: rel, Problem: "orphan",
			Detail: fmt.Sprintf("in %d hierarchies, %d processes; its container has no record", len(dirs), n),
			Action: "kill its processes and remove it", stage: stageCgroup,
			fix: func(context.Context) error { return removeCgroup(procDir, dirs) }})
	}
	return out
}

// removeCgroup empties each dir (SIGKILL to what is left in it), then
// removes it, children first.
func removeCgroup(procDir string, dirs []string) error {
	var errs []error
	for _, d := range dirs {
		var subs []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				subs = append(subs, p)
			}
			return nil
		})
		slices.Reverse(subs) // children before parents
		for _, s := range subs {
			errs = append(errs, emptyAndRemove(procDir, s))
		}
	}
	return errors.Join(errs...)
}

func emptyAndRemove(procDir, dir string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPids(dir)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if p, err := readProc(procDir, pid); err == nil {
				if err := killProc(procDir, p); err != nil {
					return err
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still holds processes %v", dir, pids)
		}
		// A killed process leaves cgroup.procs once its parent reaps it;
		// there is no event for that in cgroup v1.
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func cgroupPids(dir string) []int {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var pids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupLeaf is the last element of pid's cgroup path in the first
// hierarchy /proc lists, "" when unreadable.
func cgroupLeaf(procDir string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[2] != "/" {
			return path.Base(parts[2])
		}
	}
	return ""
}

func mustRel(base, p string) string {
	rel, _ := filepath.Rel(base, p)
	return rel
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
