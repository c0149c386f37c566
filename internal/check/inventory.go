package check

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/sandbox"
)

// inventory is everything one pass read: the records and what the host has.
type inventory struct {
	cfg  *Config
	errs []error

	pods    sandbox.Records
	podByID map[string]sandbox.PodRecord
	ctrs    container.Records
	ctrByID map[string]container.RecordInfo

	imagesDB  error // non-nil: images.db is damaged
	images    []image.Image
	badImages []string
	layers    layer.Contents
	haveLayer map[digest.Digest]bool

	mounts   []string // mount points strictly below root or state
	handlers []*handlerState
	procs    []proc
	cgroups  []string // mount points of the cgroup hierarchies

	allocations []cni.Allocation
	attached    []string

	// Filled as the rules run (in order): IDs this state dir has any trace
	// of, runtime orphans, and pids a runtime orphan's repair ends.
	ourIDs        map[string]bool
	runtimeOrphan map[string]bool
	coveredPids   map[int]bool
}

// handlerState is one runtime handler's containers and files.
type handlerState struct {
	Handler
	rt       *oci.Runtime
	listed   map[string]oci.RuntimeContainer
	stateIDs []string
	// staleLinks are attach links of no container listed, with state, or
	// with a record.
	staleLinks []string
}

func (inv *inventory) fail(what string, err error) {
	inv.errs = append(inv.errs, fmt.Errorf("%s: %w", what, err))
}

// known says whether a valid record holds id: a pod (whose init is a
// runtime container with the pod's ID) or a container.
func (inv *inventory) known(id string) bool {
	_, pod := inv.podByID[id]
	_, ctr := inv.ctrByID[id]
	return pod || ctr
}

// readable says whether every record that may hold layers could be read,
// so that "referenced by nobody" can be trusted.
func (inv *inventory) readable() bool {
	return len(inv.ctrs.Corrupt) == 0 && inv.imagesDB == nil && len(inv.badImages) == 0
}

func (c *Config) layersDir() string { return filepath.Join(c.Root, "layers") }
func (c *Config) imagesDir() string { return filepath.Join(c.Root, "images") }

func gather(ctx context.Context, cfg *Config) *inventory {
	inv := &inventory{cfg: cfg, podByID: map[string]sandbox.PodRecord{}, ctrByID: map[string]container.RecordInfo{},
		haveLayer: map[digest.Digest]bool{}, ourIDs: map[string]bool{}, runtimeOrphan: map[string]bool{}, coveredPids: map[int]bool{}}
	var err error
	if inv.pods, err = sandbox.ReadRecords(cfg.Root, cfg.State); err != nil {
		inv.fail("pod records", err)
	}
	for _, p := range inv.pods.Pods {
		inv.podByID[p.ID] = p
	}
	if inv.ctrs, err = container.ReadRecords(cfg.Root); err != nil {
		inv.fail("container records", err)
	}
	for _, c := range inv.ctrs.Containers {
		inv.ctrByID[c.ID] = c
	}
	inv.images, inv.badImages, err = image.ReadRecords(cfg.imagesDir())
	if errors.Is(err, image.ErrCorruptDB) {
		inv.imagesDB = err
	} else if err != nil {
		inv.fail("image records", err)
	}
	if inv.layers, err = layer.Inspect(cfg.layersDir()); err != nil {
		inv.fail("layer store", err)
	}
	for _, l := range inv.layers.Layers {
		inv.haveLayer[l.ChainID] = true
	}
	mi, err := readMountinfo(filepath.Join(cfg.ProcDir, "self", "mountinfo"))
	if err != nil {
		inv.fail("mounts", err)
	}
	for _, m := range mi {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			inv.cgroups = append(inv.cgroups, m.point)
		}
		if below(m.point, cfg.Root) || below(m.point, cfg.State) {
			inv.mounts = append(inv.mounts, m.point)
		}
	}
	for _, h := range cfg.Handlers {
		hs := &handlerState{Handler: h, listed: map[string]oci.RuntimeContainer{}}
		hs.rt = oci.Offline(oci.Config{Handler: h.Name, RuntimePath: h.RuntimePath, RuntimeRoot: h.RuntimeRoot,
			ConmonPath: cfg.ConmonPath, StateDir: h.StateDir, RuntimeArgs: h.RuntimeArgs})
		list, err := hs.rt.RuntimeList(ctx)
		if err != nil {
			inv.fail("runtime "+h.Name, err)
		}
		for _, c := range list {
			hs.listed[c.ID] = c
		}
		if hs.stateIDs, err = hs.rt.StateIDs(); err != nil {
			inv.fail("runtime state "+h.Name, err)
		}
		inv.handlers = append(inv.handlers, hs)
	}
	ids := slices.Collect(maps.Keys(inv.podByID))
	ids = append(ids, slices.Collect(maps.Keys(inv.ctrByID))...)
	for _, hs := range inv.handlers {
		all := append(slices.Clone(ids), hs.stateIDs...)
		all = append(all, slices.Collect(maps.Keys(hs.listed))...)
		if hs.staleLinks, err = hs.rt.StaleAttachLinks(all); err != nil {
			inv.fail("attach links "+hs.Name, err)
		}
	}
	if inv.procs, err = scanProcs(cfg.ProcDir); err != nil {
		inv.fail("processes", err)
	}
	if cfg.CNI != nil {
		if inv.attached, err = cfg.CNI.Attached(); err != nil {
			inv.fail("CNI cache", err)
		}
		if inv.allocations, err = cfg.CNI.HostLocalAllocations(); err != nil {
			inv.fail("IPAM leases", err)
		}
	}
	inv.collectIDs()
	return inv
}

// collectIDs notes every ID this root and state have a trace of, so that
// host-wide things (cgroups, pod inits) are only claimed through one.
func (inv *inventory) collectIDs() {
	for _, h := range inv.handlers {
		for _, id := range h.stateIDs {
			inv.ourIDs[id] = true
		}
		for id := range h.listed {
			inv.ourIDs[id] = true
		}
	}
	for _, dir := range []string{filepath.Join(inv.cfg.State, "pods"), filepath.Join(inv.cfg.State, "containers"),
		filepath.Join(inv.cfg.Root, "containers")} {
		names, _ := stateDirs(dir)
		for _, n := range names {
			inv.ourIDs[n] = true
		}
	}
	for _, b := range inv.pods.Corrupt {
		inv.ourIDs[podIDOf(b.Path)] = true
	}
	for _, id := range inv.pods.SetAside {
		inv.ourIDs[id] = true
	}
}

// below says whether path is strictly inside dir.
func below(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// stateDirs lists the names in <dir>; a missing dir is empty.
func stateDirs(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, err
}
