package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// maxIDLen keeps <StateDir>/exits/<id> and friends well inside NAME_MAX.
const maxIDLen = 128

// validID accepts what runc accepts ([A-Za-z0-9_+.-]) minus the names that
// would escape our directories.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen || id == "." || id == ".." {
		return errdefs.InvalidArgument("invalid container id %q", id)
	}
	for _, c := range []byte(id) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '+', c == '.', c == '-':
		default:
			return errdefs.InvalidArgument("invalid container id %q: only letters, digits and _+.- are allowed", id)
		}
	}
	return nil
}

// record is what a later call, or a later daemon, needs to find a container's
// conmon and its files again.
type record struct {
	Bundle     string    `json:"bundle"`
	LogPath    string    `json:"logPath"`
	Pid        int       `json:"pid"`
	MonitorPid int       `json:"monitorPid"`
	Created    time.Time `json:"created"`
	// Relayed: conmon runs the relay, whose holder is Pid (relay.go).
	Relayed bool `json:"relayed,omitempty"`
}

func (r *Runtime) recordPath(id string) string { return filepath.Join(r.ctrDir(id), "monitor.json") }

// writeRecord replaces the record atomically: a crash leaves the old or the
// new one, never half of one.
func (r *Runtime) writeRecord(id string, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(r.recordPath(id), data)
}

// readRecord returns ErrNotFound when the container has no state here.
func (r *Runtime) readRecord(id string) (record, error) {
	var rec record
	if err := validID(id); err != nil {
		return rec, err
	}
	data, err := os.ReadFile(r.recordPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, errdefs.NotFound("container %s: no monitor state in %s", id, r.cfg.Handler)
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, errdefs.New(errdefs.ErrDataLoss, "container %s: corrupt monitor record: %v", id, err)
	}
	return rec, nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	// No fsync: the monitor record lives under the state dir, which a
	// reboot wipes together with the processes it describes; rename alone
	// keeps it whole across a daemon crash.
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
