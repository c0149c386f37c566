package check

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// runtimeOrphans: containers in a handler's runtime root, or with conmon
// state, that no record names. The daemon's recovery only looks for those
// of container dirs it finds; a pod init whose record is gone, or a
// container whose dirs are gone, is left running.
func runtimeOrphans(inv *inventory) []Finding {
	var out []Finding
	for _, h := range inv.handlers {
		ids := slices.Clone(h.stateIDs)
		for id := range h.listed {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if inv.known(id) {
				continue
			}
			var what []string
			if c, ok := h.listed[id]; ok {
				what = append(what, fmt.Sprintf("%s container %s (pid %d)", h.Name, c.Status, c.Pid))
			}
			if pid := h.rt.RecordedMonitorPid(id); pid > 0 {
				what = append(what, fmt.Sprintf("conmon pid %d", pid))
				inv.covered(pid)
			}
			if slices.Contains(h.stateIDs, id) {
				what = append(what, "state in "+h.StateDir)
			}
			rt := h.rt
			out = append(out, Finding{Kind: "runtime", Object: h.Name + "/" + id, Problem: "orphan",
				Detail: strings.Join(what, "; ") + "; no pod or container record",
				Action: h.Name + " delete --force, stop its conmon, remove its monitor cgroup and state files",
				stage:  stageRuntime, fix: func(ctx context.Context) error { return rt.DeleteOrphan(ctx, id) }})
			inv.runtimeOrphan[id] = true
		}
		for _, link := range h.staleLinks {
			out = append(out, Finding{Kind: "runtime", Object: link, Problem: "stale-attach-link",
				Detail: "conmon's attach link of a container nobody knows", Action: "remove the link",
				stage: stageRuntime, fix: func(context.Context) error { return removeFile(link) }})
		}
	}
	return out
}

// unknownHandlers: runtime state of handlers the check cannot run (not in
// the config, or its binary is missing). Whatever runs there is out of
// every daemon's reach; nothing here can safely clean it.
func unknownHandlers(inv *inventory) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, h := range inv.handlers {
		seen[h.Name] = true
	}
	for _, sub := range []string{"runtime", "oci"} {
		names, err := stateDirs(filepath.Join(inv.cfg.State, sub))
		if err != nil {
			inv.fail("handler dirs", err)
		}
		for _, name := range names {
			if seen[name] || !nonEmpty(filepath.Join(inv.cfg.State, sub, name), sub == "oci") {
				continue
			}
			seen[name] = true
			why := "not in the config"
			if reason, ok := inv.cfg.Unusable[name]; ok {
				why = "its runtime binary is missing: " + reason
			}
			out = append(out, Finding{Kind: "runtime", Object: name, Problem: "unknown-handler",
				Detail: fmt.Sprintf("%s has state of handler %s, which is %s", filepath.Join(inv.cfg.State, sub, name), name, why),
				Action: "none: configure the handler, then check again"})
		}
	}
	return out
}

// nonEmpty says whether a runtime root (or, for oci, its ctr/ dir) holds
// any container.
func nonEmpty(dir string, oci bool) bool {
	if oci {
		dir = filepath.Join(dir, "ctr")
	}
	names, err := stateDirs(dir)
	return err != nil || len(names) > 0
}

// processOrphans: conmon and runtime processes working for this state dir
// on a container no record names, and pod inits (catatonit) in the cgroup
// of such an ID, that the runtime orphans above do not already cover.
func processOrphans(inv *inventory) []Finding {
	var out []Finding
	state := inv.cfg.State
	add := func(p proc, problem, id string) {
		procDir := inv.cfg.ProcDir
		out = append(out, Finding{Kind: "process", Object: fmt.Sprint(p.pid), Problem: problem,
			Detail: fmt.Sprintf("%s for %s, which has no record: %s", p.comm, id, strings.Join(p.args, " ")),
			Action: "kill it", stage: stageProcess, fix: func(context.Context) error { return killProc(procDir, p) }})
	}
	runtimes := map[string]bool{"runc": true}
	for _, h := range inv.handlers {
		runtimes[filepath.Base(h.RuntimePath)] = true
	}
	for _, p := range inv.procs {
		if len(p.args) == 0 || inv.isCovered(p.pid) {
			continue
		}
		bin := filepath.Base(p.args[0])
		switch {
		case bin == "conmon":
			if !below(flagValue(p.args, "--exit-dir"), state) && !below(flagValue(p.args, "-b", "--bundle"), state) {
				continue
			}
			id := flagValue(p.args, "-c", "--cid")
			inv.ourIDs[id] = true
			if !inv.known(id) {
				add(p, "orphan-conmon", id)
			}
		case runtimes[bin] && !strings.HasPrefix(p.comm, "runc:["):
			root := flagValue(p.args, "--root")
			if !below(root, state) && !inv.isRuntimeRoot(root) {
				continue
			}
			if !slices.ContainsFunc(p.args, inv.known) {
				add(p, "orphan-runtime", "a container")
			}
		case p.comm == "catatonit":
			if id := cgroupLeaf(inv.cfg.ProcDir, p.pid); id != "" && inv.ourIDs[id] && !inv.known(id) && !inv.runtimeOrphan[id] {
				add(p, "orphan-init", "pod "+id)
			}
		}
	}
	return out
}

func (inv *inventory) isRuntimeRoot(root string) bool {
	return root != "" && slices.ContainsFunc(inv.handlers, func(h *handlerState) bool { return h.RuntimeRoot == root })
}

func (inv *inventory) covered(pid int)        { inv.coveredPids[pid] = true }
func (inv *inventory) isCovered(pid int) bool { return inv.coveredPids[pid] }
