package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cradle-runtime/cradle/internal/netns"
)

// This file is for tools that work on a root and state dir while no daemon
// runs (cradle check). It reads records the way recovery does but never
// acts on its own: each change is a separate call the tool decides on.

// CorruptSuffix is appended to a pod record that cannot be read, so that
// it stops being loaded but stays for an operator to look at.
const CorruptSuffix = ".corrupt"

// PodRecord is what a record says about one pod and where its pins live.
type PodRecord struct {
	ID, Name, Handler string
	State             State
	Path              string // the record file
	NetAttach         bool   // a CNI ADD may hold an address
	InitStarted       bool
	// Namespace pins and the shm mount the pod has while READY; "" where
	// it uses the host's.
	NetNS, IPCNS, UTSNS, UserNS, Shm string
}

// BadRecord is a record file that cannot be loaded.
type BadRecord struct {
	Path string
	Err  error
}

// Records is the content of <root>/pods.
type Records struct {
	Pods    []PodRecord
	Corrupt []BadRecord
	Temp    []string // leftovers of an interrupted atomic write
	// SetAside are IDs of records already renamed to CorruptSuffix.
	SetAside []string
}

// ReadRecords loads every pod record under root; state tells where the
// pins would be. A missing pods dir is an empty one.
func ReadRecords(root, state string) (Records, error) {
	m := &Manager{recDir: filepath.Join(root, "pods"), podsDir: filepath.Join(state, "pods")}
	var out Records
	ents, err := os.ReadDir(m.recDir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read pod records: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(m.recDir, name)
		switch {
		case strings.HasSuffix(name, ".tmp"):
			out.Temp = append(out.Temp, path)
		case strings.HasSuffix(name, ".json"+CorruptSuffix):
			out.SetAside = append(out.SetAside, strings.TrimSuffix(name, ".json"+CorruptSuffix))
		case strings.HasSuffix(name, ".json"):
			p, err := loadRecord(path)
			if err != nil {
				out.Corrupt = append(out.Corrupt, BadRecord{Path: path, Err: err})
				continue
			}
			m.publish(p)
			v := p.view.Load()
			out.Pods = append(out.Pods, PodRecord{
				ID: p.id, Name: p.name, Handler: p.rec.Handler, State: p.rec.State, Path: path,
				NetAttach: p.rec.NetAttach, InitStarted: p.rec.InitStarted,
				NetNS: v.NetNS, IPCNS: v.IPCNS, UTSNS: v.UTSNS, UserNS: v.UserNS, Shm: v.Shm,
			})
		}
	}
	return out, nil
}

// PodDir is the state dir of pod id.
func PodDir(state, id string) string { return filepath.Join(state, "pods", id) }

// SetAside renames an unreadable record out of the way, as recovery does.
func SetAside(path string) error { return os.Rename(path, path+CorruptSuffix) }

// RemoveOrphanDir tears down the state dir of a pod that has no record:
// its shm mount, its namespace pins, then the files.
func RemoveOrphanDir(state, id string) error {
	m := &Manager{podsDir: filepath.Join(state, "pods")}
	dir := m.podDir(id)
	if err := errors.Join(unmountAll(filepath.Join(dir, "shm")), netns.Unpin(m.nsDir(id)), m.unpinUserns(id)); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// MarkNotReady records that pod id is stopped: the first step recovery
// takes for a READY pod that lost its namespaces. The next daemon finishes
// the stop (CNI DEL from the record) as for any NOTREADY pod.
func MarkNotReady(root, id string) error {
	m := &Manager{recDir: filepath.Join(root, "pods")}
	p, err := loadRecord(m.recordPath(id))
	if err != nil {
		return err
	}
	if p.rec.State == NotReady {
		return nil
	}
	p.rec.State = NotReady
	b, err := json.Marshal(&p.rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(m.recordPath(id), b, 0o600, true)
}
