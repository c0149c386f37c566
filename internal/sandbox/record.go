package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/userns"
)

// recordVersion is bumped when the record's meaning changes incompatibly.
const recordVersion = 1

// record is what <root>/pods/<id>.json holds. Fields that name a side effect
// are set and saved before the effect is attempted and cleared only after it
// has been undone, so a record read after a crash never under-reports.
type record struct {
	Version int             `json:"version"`
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	Config  json.RawMessage `json:"config"` // protojson of the PodSandboxConfig
	Digest  string          `json:"digest"` // of config and handler: tells a retry from a clash
	Handler string          `json:"handler,omitempty"`
	// Runtime is the handler the pod runs on when Handler is "" (the
	// default at its creation); empty in records from before it existed.
	Runtime   string    `json:"runtime,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	State     State     `json:"state"`
	// NetAttach: a CNI ADD was begun and no DEL has succeeded since.
	NetAttach bool        `json:"netAttach,omitempty"`
	Network   *cni.Result `json:"network,omitempty"`
	// InitStarted: the init process may run (Start was called and no Stop
	// has succeeded since); InitPID is its PID once Start returned.
	InitStarted bool `json:"initStarted,omitempty"`
	InitPID     int  `json:"initPid,omitempty"`
	// Sandboxed: the pod's handler runs it in one sandbox (gVisor, Kata);
	// the init is then its sandbox container, which every container joins.
	Sandboxed bool `json:"sandboxed,omitempty"`
	// SandboxCgroup is the sandbox container's cgroupsPath: on a sandboxed
	// runtime the whole sandbox (its kernel, every container) is charged
	// there, so it is the pod's cgroup when kubelet gave none.
	SandboxCgroup string `json:"sandboxCgroup,omitempty"`
	// Resources: the last UpdatePodSandboxResources (resources.go).
	Resources *PodResources `json:"resources,omitempty"`
}

// pod is one sandbox in memory.
type pod struct {
	id     string
	name   string
	digest string
	cfg    *runtimeapi.PodSandboxConfig // immutable after creation

	// mu serialises Run, Stop and Remove of this pod; it is held across
	// slow work (CNI), so readers use view instead.
	mu      sync.Mutex
	rec     record // guarded by mu
	removed bool   // guarded by mu

	view atomic.Pointer[Sandbox] // what Get and List return; replaced, never changed

	done   chan struct{} // closed when the Run that creates the pod, or its recovery, has ended
	runErr error         // that Run's error; read only after done
	// recovering: loaded from a record at start; done closes when its
	// reconciliation ends. Immutable.
	recovering bool
}

func (p *pod) visible() bool {
	v := p.view.Load()
	return v != nil && v.State != Creating
}

// snapshot returns a deep copy of the current view.
func (p *pod) snapshot() Sandbox {
	s := *p.view.Load()
	s.Config = proto.Clone(s.Config).(*runtimeapi.PodSandboxConfig)
	s.IPs = slices.Clone(s.IPs)
	if s.Network != nil {
		n := *s.Network
		n.Interfaces, n.IPs, n.Routes = slices.Clone(n.Interfaces), slices.Clone(n.IPs), slices.Clone(n.Routes)
		s.Network = &n
	}
	return s
}

func configDigest(cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encode pod config: %w", err)
	}
	h := sha256.New()
	h.Write(b)
	h.Write([]byte{0})
	h.Write([]byte(handler))
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (m *Manager) recordPath(id string) string { return filepath.Join(m.recDir, id+".json") }

// save writes p's record durably and publishes the new view. Callers hold
// p.mu.
func (m *Manager) save(p *pod) error { return m.write(p, true) }

// note is save without the fsyncs, for records that guard only side effects
// a reboot undoes by itself (mounts, namespace pins, processes under the
// state dir): a daemon crash keeps the page cache, so the record is there
// for recovery, and after a power loss there is nothing left to undo. The
// next save makes the record durable. An fsync costs milliseconds, which
// adds up on the pod start path.
func (m *Manager) note(p *pod) error { return m.write(p, false) }

func (m *Manager) write(p *pod, durable bool) error {
	b, err := json.Marshal(&p.rec)
	if err != nil {
		return fmt.Errorf("encode pod record %s: %w", p.id, err)
	}
	if err := writeFileAtomic(m.recordPath(p.id), b, 0o600, durable); err != nil {
		return fmt.Errorf("save pod record %s: %w", p.id, err)
	}
	m.publish(p)
	return nil
}

// publish rebuilds p's view from its record. Callers hold p.mu.
func (m *Manager) publish(p *pod) {
	r := &p.rec
	v := &Sandbox{
		ID: p.id, Name: p.name, Config: p.cfg, Handler: r.Handler, Runtime: r.runtime(), State: r.State,
		CreatedAt: r.CreatedAt, Network: r.Network, Resources: r.Resources,
	}
	if r.Network != nil {
		v.IPs = r.Network.PodIPs()
	}
	opts := p.cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	dir := m.podDir(p.id)
	v.Hostname, v.ResolvConf, v.Hosts = filepath.Join(dir, "hostname"), filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "hosts")
	if opts.GetNetwork() == runtimeapi.NamespaceMode_POD {
		v.NetNS, v.UTSNS = m.nsPath(p.id, "net"), m.nsPath(p.id, "uts")
	}
	if opts.GetIpc() == runtimeapi.NamespaceMode_POD {
		v.IPCNS, v.Shm = m.nsPath(p.id, "ipc"), filepath.Join(dir, "shm")
	}
	if podUserns(p.cfg) != nil {
		v.UserNS = userns.PathOf(m.usernsDir(p.id))
	}
	v.Sandboxed = r.Sandboxed
	if r.Sandboxed {
		v.SandboxCgroup = r.SandboxCgroup
	}
	switch {
	case r.Sandboxed && opts.GetPid() == runtimeapi.NamespaceMode_POD:
		// The shared PID namespace lives inside the sandbox, where no host
		// path reaches it: the containers name it by this pod-unique path
		// and the runtime gives the containers naming one path one
		// namespace (gVisor does; its sandbox's own host PID namespace
		// is not the pod's).
		v.PIDNS = filepath.Join(dir, "sandbox-pidns")
	case r.Sandboxed:
	case r.InitPID > 0:
		v.PIDNS = fmt.Sprintf("/proc/%d/ns/pid", r.InitPID)
	}
	v.Version = m.gen.Add(1)
	p.view.Store(v)
	m.gen.Add(1) // after the store: see Generation
}

// loadRecord reads one record file and rebuilds its pod.
func loadRecord(path string) (*pod, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if r.Version != recordVersion {
		return nil, fmt.Errorf("%s: record version %d, this cradle reads %d", path, r.Version, recordVersion)
	}
	if r.ID+".json" != filepath.Base(path) || r.Name == "" {
		return nil, fmt.Errorf("%s: record names pod %q (%q)", path, r.ID, r.Name)
	}
	cfg := &runtimeapi.PodSandboxConfig{}
	if err := protojson.Unmarshal(r.Config, cfg); err != nil {
		return nil, fmt.Errorf("decode pod config in %s: %w", path, err)
	}
	return &pod{id: r.ID, name: r.Name, digest: r.Digest, cfg: cfg, rec: r}, nil
}

// writeFileAtomic replaces path with data: write a temporary file beside it
// and rename it over path, so readers and crashes see the old or the new
// content, never a mix. durable adds the fsyncs (file, then directory) that
// make the new content survive a power loss too; files under the state dir,
// which a reboot wipes, do without.
func writeFileAtomic(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(perm)
	}
	if werr == nil && durable {
		werr = f.Sync()
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// runtime is the handler the pod's processes run on: the one it asked
// for, else the default recorded at its creation, else "" (the default in
// force, for records from before Runtime existed).
func (r *record) runtime() string {
	if r.Handler != "" {
		return r.Handler
	}
	return r.Runtime
}

// runtimeOf is what a new pod asking for handler records as its Runtime.
func (m *Manager) runtimeOf(handler string) string {
	if handler != "" || m.cfg.DefaultHandler == nil {
		return ""
	}
	return m.cfg.DefaultHandler()
}
