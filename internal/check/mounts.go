package check

import (
	"context"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// staleMounts: mounts under root or state that no record owns and that no
// orphan dir's repair (which unmounts everything under the dir) covers.
func staleMounts(inv *inventory) []Finding {
	var out []Finding
	for _, m := range inv.mounts {
		if inv.mountOwned(m) {
			continue
		}
		point := m
		out = append(out, Finding{Kind: "mount", Object: m, Problem: "stale", Detail: "no record owns it",
			Action: "unmount it (lazily)", stage: stageMount, fix: func(context.Context) error {
				if err := unix.Unmount(point, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && err != unix.EINVAL && err != unix.ENOENT {
					return err
				}
				return nil
			}})
	}
	return out
}

// mountOwned says whether a valid record owns the mount at m, or an
// orphan-dir finding will unmount it.
func (inv *inventory) mountOwned(m string) bool {
	under := func(dir string) []string {
		rel, err := filepath.Rel(dir, m)
		if err != nil || !below(m, dir) {
			return nil
		}
		return strings.Split(rel, string(filepath.Separator))
	}
	// State first: it may live inside root.
	if parts := under(inv.cfg.State); parts != nil {
		if len(parts) < 2 {
			return false
		}
		switch parts[0] {
		case "pods":
			return true // a record owns it, or the orphan-dir repair removes it
		case "containers":
			return true // likewise, with orphan-bundle
		}
		return false
	}
	if parts := under(inv.cfg.Root); len(parts) >= 2 && parts[0] == "containers" {
		_, ok := inv.ctrByID[parts[1]]
		return ok || slices.Contains(inv.ctrs.NoRecord, parts[1])
	}
	return false
}
