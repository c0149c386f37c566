package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// State is a container's lifecycle state.
type State string

const (
	// Creating and Removing are internal: such containers are invisible
	// to List and Status.
	Creating State = "creating"
	Created  State = "created"
	Running  State = "running"
	Exited   State = "exited"
	Removing State = "removing"
)

// CRI returns the CRI enum of s.
func (s State) CRI() runtimeapi.ContainerState {
	switch s {
	case Created:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case Running:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case Exited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

// StateFromCRI maps a CRI state (from a ListContainers filter) to a State;
// ok is false for UNKNOWN, which no container has.
func StateFromCRI(s runtimeapi.ContainerState) (State, bool) {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return Created, true
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return Running, true
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return Exited, true
	}
	return "", false
}

// Exit reasons kubelet shows.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
	// ReasonEvicted: an NRI plugin evicted the container.
	ReasonEvicted = "Evicted"
)

// User is the identity the container's process runs as, from its spec.
type User struct {
	UID, GID           int64
	SupplementalGroups []int64
}

// record is the durable state of one container.
type record struct {
	ID        string `json:"id"`
	SandboxID string `json:"sandboxID"`
	Name      string `json:"name"` // k8s_<name>_<pod>_<ns>_<uid>_<attempt>
	Handler   string `json:"handler"`
	State     State  `json:"state"`

	// Config is the CRI ContainerConfig, protobuf-encoded: it keeps every
	// field, and its hash tells kubelet's identical retry from a conflict.
	Config     []byte `json:"config"`
	ConfigHash string `json:"configHash"`
	// Resources are the CRI LinuxContainerResources in force after an
	// UpdateContainerResources, protobuf-encoded; nil: the config's.
	Resources []byte `json:"resources,omitempty"`

	ImageID    digest.Digest   `json:"imageID"`
	ImageName  string          `json:"imageName"` // the reference as resolved (first repo tag)
	ChainIDs   []digest.Digest `json:"chainIDs"`
	StopSignal string          `json:"stopSignal,omitempty"` // from the image config
	LogPath    string          `json:"logPath,omitempty"`
	User       User            `json:"user"`

	// ImageVolumes are the CRI mounts of images (imagevolume.go).
	ImageVolumes []imageVolume `json:"imageVolumes,omitempty"`

	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	ExitCode   int32     `json:"exitCode"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
}

func (r *record) config() (*runtimeapi.ContainerConfig, error) {
	cfg := &runtimeapi.ContainerConfig{}
	if err := proto.Unmarshal(r.Config, cfg); err != nil {
		return nil, errdefs.New(errdefs.ErrDataLoss, "container %s: corrupt config in record: %v", r.ID, err)
	}
	return cfg, nil
}

// ctr is one container in memory.
type ctr struct {
	// op serialises lifecycle operations (start, stop, remove, exec checks).
	op sync.Mutex

	// saving orders record writes: the last change made is the last written.
	saving  sync.Mutex
	mu      sync.Mutex // guards rec, ver and exited
	rec     record
	ver     uint64                              // Container.Version: set from Manager.gen at each change of rec
	cfg     *runtimeapi.ContainerConfig         // decoded rec.Config, read-only
	exited  chan struct{}                       // closed once the exit is recorded; nil before start
	watched bool                                // an exit watch runs (watch); guarded by mu
	res     *runtimeapi.LinuxContainerResources // decoded rec.Resources, read-only; see resourcesLocked
	// layers says this process holds references on rec.ChainIDs.
	layers bool
	// volLayers: the same for the layers of rec.ImageVolumes.
	volLayers bool
	// reaping, when not nil, is closed once the runtime delete that follows
	// a watched exit (reap) has ended; reaped says it succeeded, so Remove
	// has only the files left. Both guarded by mu.
	reaping chan struct{}
	reaped  bool
	// recovered, when not nil, is closed once the reconciliation after a
	// daemon restart has ended; operations wait for it (waitRecovered).
	recovered chan struct{}
	// spec is the OCI spec as written (for NRI), nil until needed after a
	// restart; guarded by mu.
	spec *specs.Spec
	// evicted is the reason an NRI plugin gave to evict the container;
	// guarded by mu.
	evicted string
}

func (c *ctr) snapshot() record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

func (c *ctr) state() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec.State
}

const recordName = "record.json"

// save writes rec atomically and durably into dir.
func save(dir string, rec *record) error { return write(dir, rec, true) }

// note writes rec atomically but skips the fsyncs: for the intent record,
// which guards only what a reboot undoes (the rootfs mount) or what recovery
// finds without it (a container directory with no readable record is an
// orphan and removed), and for the records of the start and the removal (see
// their callers).
func note(dir string, rec *record) error { return write(dir, rec, false) }

func write(dir string, rec *record, durable bool) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("container %s: encode record: %w", rec.ID, err)
	}
	tmp := filepath.Join(dir, recordName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("container %s: write record: %w", rec.ID, err)
	}
	_, err = f.Write(data)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordName))
	}
	if err == nil && durable {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("container %s: write record: %w", rec.ID, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func load(dir string) (record, error) {
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, recordName))
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, errdefs.New(errdefs.ErrDataLoss, "corrupt container record %s: %v", dir, err)
	}
	if rec.ID != filepath.Base(dir) {
		return rec, errdefs.New(errdefs.ErrDataLoss, "container record %s names id %q", dir, rec.ID)
	}
	return rec, nil
}

// update changes the in-memory record with fn and persists it. On a write
// failure memory keeps the change: it describes the truth (the side effect
// happened), and the next write carries it.
func (m *Manager) update(c *ctr, fn func(*record)) error { return m.change(c, fn, true) }

// updateNote is update without the fsyncs (see note), for Removing: after a
// power loss the older durable record (exited) is read instead, and that
// container is removed again, every undo step accepting what the first
// removal already did.
func (m *Manager) updateNote(c *ctr, fn func(*record)) error { return m.change(c, fn, false) }

func (m *Manager) change(c *ctr, fn func(*record), durable bool) error {
	c.saving.Lock()
	defer c.saving.Unlock()
	c.mu.Lock()
	fn(&c.rec)
	c.ver = m.gen.Add(1)
	rec := c.rec
	c.mu.Unlock()
	m.changed()
	return write(m.dir(rec.ID), &rec, durable)
}
