// Package check is `cradle check`: an offline consistency check of a root
// and state dir for operators after a crash, and its repair. It compares
// what the records say (pods, containers, images, layers) with what the
// disk and the kernel hold (state dirs, mounts, namespace pins, runtime
// containers, conmon and other processes, cgroups, CNI leases), and reports
// each difference with what a repair does about it.
//
// It runs only while no daemon does: it takes the daemon's root and state
// locks for its whole run, so a daemon cannot start under it either. It
// reads records through their owning packages and repairs through them
// too; a repair never removes what a valid record names.
package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/daemon"
)

// Handler is one runtime handler as the daemon would run it.
type Handler struct {
	Name        string
	RuntimePath string   // the runc-compatible binary
	RuntimeRoot string   // its --root
	StateDir    string   // internal/oci's dir: <state>/oci/<name>
	RuntimeArgs []string // the handler's runtime_args, before every subcommand
}

// Config says what to check.
type Config struct {
	Root, State string
	Handlers    []Handler
	ConmonPath  string
	// Unusable names handlers of the config left out, with the reason (a
	// missing runtime binary).
	Unusable map[string]string
	// CNI reads the network config and libcni's cache; nil skips the CNI
	// cache and IPAM leases.
	CNI *cni.Network
	// ProcDir is /proc unless a test says otherwise.
	ProcDir string
}

// Options select the mode of a run.
type Options struct {
	// Repair fixes what is safe to fix, then checks again.
	Repair bool
}

// Finding is one inconsistency.
type Finding struct {
	Kind    string `json:"kind"`    // pod, container, image, layer, runtime, process, mount, cgroup, ip, cni
	Object  string `json:"object"`  // an ID, a path or a pid
	Problem string `json:"problem"` // a stable code, e.g. orphan-dir
	Detail  string `json:"detail,omitempty"`
	Action  string `json:"action"`           // what repair does; "none" when it leaves it
	Result  string `json:"result,omitempty"` // after a repair: repaired or failed
	Error   string `json:"error,omitempty"`

	stage stage
	fix   func(ctx context.Context) error
}

// maxRepairRounds bounds the rounds of one --repair.
const maxRepairRounds = 3

func (f *Finding) key() string { return f.Kind + " " + f.Object + " " + f.Problem }

// Repairable says whether repair acts on f.
func (f *Finding) Repairable() bool { return f.fix != nil }

// Report is the outcome of a run.
type Report struct {
	Findings []Finding `json:"findings"`
	// Remaining is what a check after the repair still finds; nil when no
	// repair ran.
	Remaining []Finding `json:"remaining,omitempty"`
	Repaired  bool      `json:"repaired"`
	// Incomplete lists what could not be checked (an unreadable dir, a
	// runtime binary that failed).
	Incomplete []string `json:"incomplete,omitempty"`
}

// Clean says whether nothing is (any longer) wrong.
func (r *Report) Clean() bool {
	if r.Repaired {
		return len(r.Remaining) == 0
	}
	return len(r.Findings) == 0
}

// Run checks cfg's root and state, and repairs them when opts say so.
// An error means the check could not run (a daemon holds the locks, a
// directory is unreadable); problems found are in the report.
func Run(ctx context.Context, cfg Config, opts Options) (*Report, error) {
	for name, d := range map[string]string{"root": cfg.Root, "state": cfg.State} {
		if d == "" || !filepath.IsAbs(d) || filepath.Clean(d) != d {
			return nil, fmt.Errorf("%s dir %q must be a clean absolute path", name, d)
		}
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s dir %s: not a directory (%v)", name, d, err)
		}
	}
	if cfg.ProcDir == "" {
		cfg.ProcDir = "/proc"
	}
	release, err := daemon.LockDirs(cfg.Root, cfg.State)
	if err != nil {
		return nil, fmt.Errorf("refusing to check while a daemon runs: %w", err)
	}
	defer release()

	rep := &Report{Findings: []Finding{}}
	rep.Findings, rep.Incomplete = detect(ctx, &cfg)
	if !opts.Repair {
		return rep, nil
	}
	rep.Repaired = true
	// A repair can bring new findings to light (a record set aside no
	// longer holds its layers, as for the daemon): a few rounds take them
	// too, each new finding once.
	seen := map[string]bool{}
	for _, f := range rep.Findings {
		seen[f.key()] = true
	}
	batch := rep.Findings
	for round := 1; ; round++ {
		repair(ctx, batch)
		next, incomplete := detect(ctx, &cfg)
		n := len(rep.Findings)
		for _, f := range next {
			if f.fix != nil && !seen[f.key()] {
				seen[f.key()] = true
				rep.Findings = append(rep.Findings, f)
			}
		}
		if len(rep.Findings) == n || round == maxRepairRounds {
			rep.Remaining, rep.Incomplete = next, incomplete
			return rep, nil
		}
		batch = rep.Findings[n:]
	}
}

// stage orders repairs: what holds a thing goes before the thing (a
// container's process before its mount, a mount before the layer under it,
// a process before its cgroup).
type stage int

const (
	stageRuntime stage = iota
	stageProcess
	stageNetwork
	stageLease
	stageRecord
	stageDir
	stageMount
	stageImage
	stageLayer
	stageCgroup
	stagePodState
)

func repair(ctx context.Context, fs []Finding) {
	order := make([]int, len(fs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(fs[a].stage) - int(fs[b].stage) })
	for _, i := range order {
		f := &fs[i]
		if f.fix == nil {
			continue
		}
		if err := f.fix(ctx); err != nil {
			f.Result, f.Error = "failed", err.Error()
			continue
		}
		f.Result = "repaired"
	}
}

// detect gathers everything and runs every rule; incomplete says what
// could not be read.
func detect(ctx context.Context, cfg *Config) (found []Finding, incomplete []string) {
	inv := gather(ctx, cfg)
	out := []Finding{}
	for _, rule := range []func(*inventory) []Finding{
		podRecords, containerRecords, imageRecords, layerStore,
		runtimeOrphans, unknownHandlers, processOrphans, networkOrphans,
		staleMounts, cgroupOrphans,
	} {
		out = append(out, rule(inv)...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return strings.Compare(a.Kind+" "+a.Object+" "+a.Problem, b.Kind+" "+b.Object+" "+b.Problem)
	})
	for _, err := range inv.errs {
		incomplete = append(incomplete, err.Error())
	}
	return out, incomplete
}
