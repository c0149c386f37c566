package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Messages on conmon's ctl FIFO (<bundle>/ctl): "<type> <height> <width>\n".
const (
	ctlResize    = 1
	ctlReopenLog = 2
)

// reopenTimeout bounds ReopenLog when ctx has no deadline.
const reopenTimeout = 10 * time.Second

// ReopenLog makes conmon close the container's log file and open LogPath
// anew: kubelet renames the file to rotate it, then calls this. It returns
// once the new file exists. conmon replaces the file at LogPath if it was not
// renamed away, so call it only after a rename.
func (r *Runtime) ReopenLog(ctx context.Context, id string) error {
	rec, err := r.readRecord(id)
	if err != nil {
		return err
	}
	before, _ := inodeOf(rec.LogPath)
	if err := r.sendCtl(rec, id, fmt.Sprintf("%d 0 0\n", ctlReopenLog)); err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, reopenTimeout)
		defer cancel()
	}
	// conmon opens <log>.tmp and renames it over the log path: a different
	// inode at the path means it is done.
	m := r.monitorOf(id)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if ino, ok := inodeOf(rec.LogPath); ok && ino != before {
			return nil
		}
		if m != nil && m.watch != nil && m.watch.exitedProcess() {
			return errdefs.FailedPrecondition("reopen log of %s: conmon exited", id)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return errdefs.WithKind(kindOfContext(ctx.Err()),
				fmt.Errorf("reopen log of %s: conmon did not reopen %s: %w", id, rec.LogPath, ctx.Err()))
		}
	}
}

// ResizeTerminal tells conmon the new size of a container's terminal.
func (r *Runtime) ResizeTerminal(id string, width, height uint16) error {
	rec, err := r.readRecord(id)
	if err != nil {
		return err
	}
	return r.sendCtl(rec, id, fmt.Sprintf("%d %d %d\n", ctlResize, height, width))
}

// sendCtl writes one message to conmon's ctl FIFO. The open does not block:
// with conmon gone there is no reader and it fails with ENXIO.
func (r *Runtime) sendCtl(rec record, id, msg string) error {
	path := filepath.Join(rec.Bundle, "ctl")
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENXIO), errors.Is(err, fs.ErrNotExist):
		return errdefs.FailedPrecondition("container %s: conmon is not running", id)
	case err != nil:
		return fmt.Errorf("container %s: open %s: %w", id, path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	// One write of less than PIPE_BUF is atomic: messages never interleave.
	if _, err := f.WriteString(msg); err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return errdefs.FailedPrecondition("container %s: conmon is not running", id)
		}
		return fmt.Errorf("container %s: write %s: %w", id, path, err)
	}
	return nil
}

func inodeOf(path string) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}
