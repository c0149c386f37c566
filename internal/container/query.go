package container

import (
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Container is a snapshot of one container. Config is shared: read-only.
type Container struct {
	ID        string
	SandboxID string
	Name      string // k8s_<name>_<pod>_<ns>_<uid>_<attempt>
	Handler   string
	Config    *runtimeapi.ContainerConfig

	State      State
	CreatedAt  time.Time
	StartedAt  time.Time // zero until started
	FinishedAt time.Time // zero until exited
	ExitCode   int32
	Reason     string // Completed, Error or OOMKilled once exited
	Message    string

	// StopSignal is what StopContainer sends: the config's, else the
	// image's STOPSIGNAL, else SIGTERM.
	StopSignal runtimeapi.Signal

	ImageRef  string // the image ID
	ImageName string
	LogPath   string // "" when the pod or the config names no log
	User      User
	// Resources are those in force: the last update's, else the config's.
	Resources *runtimeapi.LinuxContainerResources

	imageVolumes []imageVolume

	// Version changes whenever the container does, and no two versions of
	// the manager's containers are equal: a cache of what the container
	// answers (the CRI layer's encoded list items) is fresh while it holds.
	Version uint64
}

func (c *ctr) view() Container {
	c.mu.Lock()
	r := c.rec
	res := c.resourcesLocked()
	ver := c.ver
	c.mu.Unlock()
	return Container{
		ID: r.ID, SandboxID: r.SandboxID, Name: r.Name, Handler: r.Handler, Config: c.cfg,
		State: r.State, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		ExitCode: r.ExitCode, Reason: r.Reason, Message: r.Message,
		ImageRef: r.ImageID.String(), ImageName: r.ImageName, LogPath: r.LogPath, User: r.User,
		StopSignal: reportedStopSignal(c.cfg.GetStopSignal(), r.StopSignal),
		Resources:  res, imageVolumes: r.ImageVolumes, Version: ver,
	}
}

// Status returns the container; ErrNotFound for an unknown one.
func (m *Manager) Status(id string) (Container, error) {
	c, err := m.get(id)
	if err != nil {
		return Container{}, err
	}
	v := c.view()
	if v.State == Removing {
		return Container{}, errdefs.NotFound("container %q is being removed", id)
	}
	return v, nil
}

// Filter selects containers; zero fields match all.
type Filter struct {
	ID        string // full ID or unique-or-not prefix
	State     *State
	SandboxID string
	Labels    map[string]string // all must match
}

// List returns the containers matching f, oldest first.
func (m *Manager) List(f Filter) []Container {
	m.mu.RLock()
	cs := make([]*ctr, 0, len(m.containers))
	for id, c := range m.containers {
		if strings.HasPrefix(id, f.ID) {
			cs = append(cs, c)
		}
	}
	m.mu.RUnlock()
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		// The filter first, on the record's fields: a filtered list (one
		// pod's containers) copies only what it returns.
		c.mu.Lock()
		st, sb := c.rec.State, c.rec.SandboxID
		c.mu.Unlock()
		if st == Removing || (f.State != nil && st != *f.State) ||
			(f.SandboxID != "" && sb != f.SandboxID) || !labelsMatch(c.cfg.GetLabels(), f.Labels) {
			continue
		}
		v := c.view()
		if v.State == Removing || (f.State != nil && v.State != *f.State) {
			continue // changed in between
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// ForSandbox returns every container of a sandbox, for stopping or
// removing the pod.
func (m *Manager) ForSandbox(sandboxID string) []Container {
	return m.List(Filter{SandboxID: sandboxID})
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// CRI is the container as ListContainers reports it.
func (c Container) CRI() *runtimeapi.Container {
	return &runtimeapi.Container{
		Id: c.ID, PodSandboxId: c.SandboxID, Metadata: c.Config.GetMetadata(),
		Image: c.imageSpec(), ImageRef: c.ImageRef, ImageId: c.ImageRef,
		State: c.State.CRI(), CreatedAt: unixNano(c.CreatedAt),
		Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
	}
}

func (c Container) imageSpec() *runtimeapi.ImageSpec {
	s := proto.Clone(c.Config.GetImage()).(*runtimeapi.ImageSpec)
	if s == nil {
		s = &runtimeapi.ImageSpec{}
	}
	s.Image = c.ImageName
	return s
}

// CRIStatus is the container as ContainerStatus reports it.
func (c Container) CRIStatus() *runtimeapi.ContainerStatus {
	st := &runtimeapi.ContainerStatus{
		Id: c.ID, Metadata: c.Config.GetMetadata(), State: c.State.CRI(),
		CreatedAt: unixNano(c.CreatedAt), StartedAt: unixNano(c.StartedAt), FinishedAt: unixNano(c.FinishedAt),
		ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
		Image: c.imageSpec(), ImageRef: c.ImageRef, ImageId: c.ImageRef,
		Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
		Mounts: c.criMounts(), LogPath: c.LogPath,
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: c.User.UID, Gid: c.User.GID, SupplementalGroups: c.User.SupplementalGroups,
		}},
		StopSignal: c.StopSignal,
	}
	if r := c.Resources; r != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: r}
	}
	return st
}

// CountByState counts the containers in each state, from memory, holding
// the index lock only to copy it (the metrics gauges read it at scrape time).
// Containers being created or removed are not counted, as List shows none.
func (m *Manager) CountByState() map[State]int {
	m.mu.RLock()
	cs := make([]*ctr, 0, len(m.containers))
	for _, c := range m.containers {
		cs = append(cs, c)
	}
	m.mu.RUnlock()
	out := map[State]int{}
	for _, c := range cs {
		if st := c.state(); st != Removing && st != Creating {
			out[st]++
		}
	}
	return out
}
