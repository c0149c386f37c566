package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// undoTimeout bounds the runtime calls of one undo; it does not follow the
// caller's deadline, which may have passed (a Create that failed for it).
const undoTimeout = 30 * time.Second

// undo removes every trace of a container that is not running: runtime
// state, rootfs mount, bundle, record. Each step accepts the absence of what
// it removes, so undo finishes any partial create or remove.
func (m *Manager) undo(ctx context.Context, rt *oci.Runtime, c *ctr) error {
	id := c.rec.ID
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	if rt != nil {
		del := func() error { return rt.Delete(ctx, id, true) }
		if c.reapedWait(ctx) {
			del = func() error { return rt.DeleteFiles(ctx, id) }
		}
		if err := del(); err != nil {
			return err
		}
		crashpoint.Hit(crashpoint.RemoveDeleted)
	}
	if err := unmountRootfs(m.rootfs(id)); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RemoveUnmounted)
	if err := unmountImageVolumes(m.bundle(id)); err != nil {
		return err
	}
	m.release(c)
	m.releaseImageVolumes(c)
	if err := os.RemoveAll(m.bundle(id)); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.RemoveBundle)
	// The record goes first, so a crash within RemoveAll leaves no record
	// naming half a directory.
	if err := os.Remove(filepath.Join(m.dir(id), recordName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(m.dir(id))
}
