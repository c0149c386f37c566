package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Exit is how a container ended.
type Exit struct {
	// Code is the exit status, 128+signal when killed by a signal, 255 when
	// the status was lost, and -1 when conmon could not tell.
	Code int
	// FinishedAt is when the exit was recorded (the exit file's mtime).
	FinishedAt time.Time
	// OOMKilled is set when conmon saw an OOM kill in the container's cgroup.
	OOMKilled bool
	// Message explains an unusual exit (its monitor died first); usually empty.
	Message string
}

// ExitStatus reads the recorded exit of a container. ok is false while the
// container has not exited. It works also for containers that exited while
// the daemon was down: conmon wrote the record.
func (r *Runtime) ExitStatus(id string) (exit Exit, ok bool, err error) {
	if err := validID(id); err != nil {
		return Exit{}, false, err
	}
	exit, ok, err = r.readExit(id)
	if err != nil || ok {
		return exit, ok, err
	}
	if _, err := os.Stat(r.ctrDir(id)); errors.Is(err, fs.ErrNotExist) {
		return Exit{}, false, errdefs.NotFound("container %s: no state in %s", id, r.cfg.Handler)
	}
	return Exit{}, false, nil
}

func (r *Runtime) readExit(id string) (Exit, bool, error) {
	f, err := os.Open(r.exitFile(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Exit{}, false, nil
	}
	if err != nil {
		return Exit{}, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Exit{}, false, err
	}
	buf := make([]byte, 32)
	n, _ := f.Read(buf)
	if strings.TrimSpace(string(buf[:n])) == "" {
		// Being written in place: not an exit yet. The watch wakes waiters
		// on IN_CLOSE_WRITE, and a monitor that died mid-write is adopted,
		// which records the exit atomically.
		return Exit{}, false, nil
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return Exit{}, false, errdefs.New(errdefs.ErrDataLoss, "container %s: corrupt exit file %q", id, buf[:n])
	}
	exit := Exit{Code: code, FinishedAt: fi.ModTime()}
	dir := r.ctrDir(id)
	if _, err := os.Stat(filepath.Join(dir, "oom")); err == nil {
		exit.OOMKilled = true
	}
	if msg, err := os.ReadFile(filepath.Join(dir, "exit-message")); err == nil {
		exit.Message = string(msg)
	}
	return exit, true, nil
}

// WaitExit blocks until the container has exited and returns its exit. Many
// waiters cost one inotify watch in total. It fails with ErrNotFound when the
// container has no state here, and with ErrUnavailable when the Runtime is
// closed meanwhile.
func (r *Runtime) WaitExit(ctx context.Context, id string) (Exit, error) {
	if err := validID(id); err != nil {
		return Exit{}, err
	}
	ch, cancel, ok := r.exits.subscribe(id)
	defer cancel()
	// Subscribed first, so an exit the adoption records cannot be missed.
	if _, exited, err := r.ExitStatus(id); err == nil && !exited {
		r.superviseOrphan(id)
	}
	for {
		exit, exited, err := r.ExitStatus(id)
		if err != nil || exited {
			return exit, err
		}
		if !ok {
			return Exit{}, errdefs.Unavailable("oci %s: runtime closed", r.cfg.Handler)
		}
		select {
		case <-ch:
			ok = !r.exits.isClosed()
		case <-ctx.Done():
			return Exit{}, errdefs.WithKind(kindOfContext(ctx.Err()),
				fmt.Errorf("wait for container %s to exit: %w", id, ctx.Err()))
		}
	}
}

// recordExit writes the exit file in conmon's place (its monitor died first)
// and wakes waiters through the same inotify event conmon's write would make.
func (r *Runtime) recordExit(id string, code int, message string) error {
	if message != "" {
		if err := writeFileAtomic(filepath.Join(r.ctrDir(id), "exit-message"), []byte(message)); err != nil {
			return err
		}
	}
	return writeFileAtomic(r.exitFile(id), []byte(strconv.Itoa(code)))
}
