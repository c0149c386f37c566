package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/internal/oci"
)

// undo removes every trace of a container that is not running: runtime
// state, rootfs mount, bundle, record. Each step accepts the absence of what
// it removes, so undo finishes any partial create or remove.
func (m *Manager) undo(rt *oci.Runtime, c *ctr) error {
	id := c.rec.ID
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if rt != nil {
		if err := rt.Delete(ctx, id, true); err != nil {
			return err
		}
	}
	if err := unmountRootfs(m.rootfs(id)); err != nil {
		return err
	}
	if err := unmountImageVolumes(m.bundle(id)); err != nil {
		return err
	}
	m.release(c)
	m.releaseImageVolumes(c)
	if err := os.RemoveAll(m.bundle(id)); err != nil {
		return err
	}
	// The record goes first, so a crash within RemoveAll leaves no record
	// naming half a directory.
	if err := os.Remove(filepath.Join(m.dir(id), recordName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(m.dir(id))
}
