package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/sandbox"
)

// podRecords: unreadable records, temp files, pod dirs without a record,
// and READY pods whose namespaces or shm are gone.
func podRecords(inv *inventory) []Finding {
	var out []Finding
	for _, b := range inv.pods.Corrupt {
		out = append(out, Finding{Kind: "pod", Object: podIDOf(b.Path), Problem: "corrupt-record",
			Detail: b.Err.Error(), Action: "set the record aside as " + filepath.Base(b.Path) + sandbox.CorruptSuffix,
			stage: stageRecord, fix: func(context.Context) error { return sandbox.SetAside(b.Path) }})
	}
	for _, t := range inv.pods.Temp {
		out = append(out, Finding{Kind: "pod", Object: t, Problem: "temp-file", Detail: "left by an interrupted record write",
			Action: "remove it", stage: stageRecord, fix: func(context.Context) error { return removeFile(t) }})
	}
	dirs, err := stateDirs(filepath.Join(inv.cfg.State, "pods"))
	if err != nil {
		inv.fail("pod dirs", err)
	}
	for _, id := range dirs {
		if _, ok := inv.podByID[id]; ok {
			continue
		}
		state := inv.cfg.State
		out = append(out, Finding{Kind: "pod", Object: id, Problem: "orphan-dir",
			Detail: sandbox.PodDir(state, id) + " has no pod record", Action: "unmount, unpin and remove the dir",
			stage: stageDir, fix: func(context.Context) error {
				return firstErr(unmountUnder(sandbox.PodDir(state, id)), func() error { return sandbox.RemoveOrphanDir(state, id) })
			}})
	}
	for _, p := range inv.pods.Pods {
		if p.State != sandbox.Ready {
			continue
		}
		if why := lostResources(inv, p); why != "" {
			root, id := inv.cfg.Root, p.ID
			out = append(out, Finding{Kind: "pod", Object: p.ID, Problem: "ready-without-state", Detail: why,
				Action: "record the pod NOTREADY (the daemon then finishes the stop and frees its IP)",
				stage:  stagePodState, fix: func(context.Context) error { return sandbox.MarkNotReady(root, id) }})
		}
	}
	return out
}

// lostResources says what a READY pod misses, "" when nothing.
func lostResources(inv *inventory, p sandbox.PodRecord) string {
	dir := sandbox.PodDir(inv.cfg.State, p.ID)
	if _, err := os.Stat(dir); err != nil {
		return dir + " is missing"
	}
	for _, ns := range []string{p.NetNS, p.IPCNS, p.UTSNS, p.UserNS} {
		if ns != "" && !netns.Exists(ns) {
			return ns + " is not a pinned namespace"
		}
	}
	if p.Shm != "" && !slices.Contains(inv.mounts, p.Shm) {
		return p.Shm + " is not mounted"
	}
	return ""
}

// podIDOf is the pod ID a record file is named after.
func podIDOf(path string) string { return strings.TrimSuffix(filepath.Base(path), ".json") }

// containerRecords: unreadable records, dirs without a record, bundles
// without a record, and records naming a pod or layer that is gone.
func containerRecords(inv *inventory) []Finding {
	var out []Finding
	root, state := inv.cfg.Root, inv.cfg.State
	for _, b := range inv.ctrs.Corrupt {
		out = append(out, Finding{Kind: "container", Object: b.ID, Problem: "corrupt-record", Detail: b.Err.Error(),
			Action: "set record.json aside as record.json" + container.CorruptSuffix + " (the writable layer stays)",
			stage:  stageRecord, fix: func(context.Context) error { return container.SetAside(root, b.ID) }})
	}
	for _, id := range inv.ctrs.NoRecord {
		out = append(out, Finding{Kind: "container", Object: id, Problem: "no-record",
			Detail: container.RecordDir(root, id) + " has no record.json", Action: "remove the dir",
			stage: stageDir, fix: func(context.Context) error {
				dir := container.RecordDir(root, id)
				return firstErr(unmountUnder(dir), func() error { return os.RemoveAll(dir) })
			}})
	}
	bundles, err := stateDirs(filepath.Join(state, "containers"))
	if err != nil {
		inv.fail("container bundles", err)
	}
	for _, id := range bundles {
		if _, ok := inv.ctrByID[id]; ok {
			continue
		}
		out = append(out, Finding{Kind: "container", Object: id, Problem: "orphan-bundle",
			Detail: container.BundleDir(state, id) + " has no container record", Action: "unmount and remove the bundle",
			stage: stageDir, fix: func(context.Context) error {
				return firstErr(unmountUnder(container.BundleDir(state, id)), func() error { return container.RemoveBundle(state, id) })
			}})
	}
	for _, c := range inv.ctrs.Containers {
		if _, ok := inv.podByID[c.SandboxID]; !ok {
			out = append(out, Finding{Kind: "container", Object: c.ID, Problem: "missing-pod",
				Detail: fmt.Sprintf("its pod %s has no record (state %s)", c.SandboxID, c.State),
				Action: "none: remove the container through the CRI"})
		}
		if missing := missingLayers(inv, c.ChainIDs); len(missing) > 0 {
			out = append(out, Finding{Kind: "container", Object: c.ID, Problem: "missing-layer",
				Detail: "layers not in the store: " + joinDigests(missing),
				Action: "none: its rootfs cannot be mounted again; remove the container through the CRI"})
		}
	}
	return out
}

// imageRecords: a damaged images.db, undecodable records, and records
// whose layers are missing (the daemon drops those at start).
func imageRecords(inv *inventory) []Finding {
	dir := inv.cfg.imagesDir()
	if inv.imagesDB != nil {
		return []Finding{{Kind: "image", Object: filepath.Join(dir, image.DBName), Problem: "corrupt-db",
			Detail: inv.imagesDB.Error(), Action: "set it aside as " + image.DBName + image.CorruptSuffix + " (images must be pulled again)",
			stage: stageRecord, fix: func(context.Context) error { return image.SetAsideDB(dir) }}}
	}
	var out []Finding
	for _, k := range inv.badImages {
		out = append(out, Finding{Kind: "image", Object: k, Problem: "corrupt-record", Detail: "the record does not decode",
			Action: "move it to the bucket \"corrupt\" of " + image.DBName, stage: stageRecord,
			fix: func(context.Context) error { return image.SetAsideRecords(dir, []string{k}) }})
	}
	for _, img := range inv.images {
		if missing := missingLayers(inv, img.ChainIDs); len(missing) > 0 {
			id := img.ID
			out = append(out, Finding{Kind: "image", Object: img.ID.String(), Problem: "missing-layer",
				Detail: fmt.Sprintf("%v: layers not in the store: %s", img.RepoTags, joinDigests(missing)),
				Action: "drop the record (pull it again)", stage: stageImage,
				fix: func(context.Context) error { return image.DropRecords(dir, []digest.Digest{id}) }})
		}
	}
	return out
}

// layerStore: layers no intact image and no container holds, entries that
// are not layers, and leftovers under tmp/.
func layerStore(inv *inventory) []Finding {
	dir := inv.cfg.layersDir()
	var out []Finding
	rm := func(name string) func(context.Context) error {
		return func(context.Context) error { return layer.RemoveEntry(dir, name) }
	}
	for _, t := range inv.layers.Temp {
		out = append(out, Finding{Kind: "layer", Object: t, Problem: "temp", Detail: "left by an interrupted unpack or removal",
			Action: "remove it", stage: stageLayer, fix: rm(t)})
	}
	for _, b := range inv.layers.Broken {
		out = append(out, Finding{Kind: "layer", Object: b, Problem: "broken", Detail: "not a committed layer (no valid layer.json and diff/)",
			Action: "remove it", stage: stageLayer, fix: rm(b)})
	}
	if !inv.readable() {
		return out // a record we cannot read may hold any layer
	}
	held := map[digest.Digest]bool{}
	for _, img := range inv.images {
		if len(missingLayers(inv, img.ChainIDs)) == 0 {
			for _, c := range img.ChainIDs {
				held[c] = true
			}
		}
	}
	for _, c := range inv.ctrs.Containers {
		for _, l := range c.ChainIDs {
			held[l] = true
		}
	}
	for _, l := range inv.layers.Layers {
		if !held[l.ChainID] {
			out = append(out, Finding{Kind: "layer", Object: l.ChainID.String(), Problem: "unreferenced",
				Detail: "no image or container holds it (the daemon prunes it at start)", Action: "remove it",
				stage: stageLayer, fix: rm(layer.EntryName(l.ChainID))})
		}
	}
	return out
}

func missingLayers(inv *inventory, ids []digest.Digest) []digest.Digest {
	var out []digest.Digest
	for _, id := range ids {
		if !inv.haveLayer[id] {
			out = append(out, id)
		}
	}
	return out
}

func joinDigests(ds []digest.Digest) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

func removeFile(p string) error {
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// firstErr runs next only when err is nil.
func firstErr(err error, next func() error) error {
	if err != nil {
		return err
	}
	return next()
}
