package cri

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (s *Server) containersEnabled(rpc string) error {
	if s.containers == nil {
		return errdefs.New(errdefs.ErrUnimplemented, "%s: containers are not enabled in this daemon", rpc)
	}
	return nil
}

// CreateContainer creates a container in a pod. kubelet's identical retry
// after its own timeout gets the first call's result.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	if err := s.containersEnabled("CreateContainer"); err != nil {
		return nil, err
	}
	if req.PodSandboxId == "" || req.Config == nil {
		return nil, errdefs.InvalidArgument("CreateContainer: pod_sandbox_id and config are required")
	}
	id, err := s.containers.Create(ctx, req.PodSandboxId, req.Config, req.SandboxConfig)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	if err := s.containersEnabled("StartContainer"); err != nil {
		return nil, err
	}
	if err := s.containers.Start(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer signals, waits up to the grace timeout, then kills. An
// unknown container is already stopped.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	if err := s.containersEnabled("StopContainer"); err != nil {
		return nil, err
	}
	if req.Timeout < 0 {
		return nil, errdefs.InvalidArgument("StopContainer: negative timeout %d", req.Timeout)
	}
	err := s.containers.Stop(ctx, req.ContainerId, seconds(req.Timeout))
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container; an unknown one is already removed.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	if err := s.containersEnabled("RemoveContainer"); err != nil {
		return nil, err
	}
	if err := s.containers.Remove(ctx, req.ContainerId); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// ContainerStatus answers from memory.
func (s *Server) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	if err := s.containersEnabled("ContainerStatus"); err != nil {
		return nil, err
	}
	c, err := s.containers.Status(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st := c.CRIStatus()
	st.ImageRef = s.imageRef(&c)
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.Verbose {
		in, err := s.containers.Inspect(req.ContainerId)
		if err != nil {
			return nil, err
		}
		// Keys as containerd names them: tools read .info.pid and
		// .info.runtimeSpec from either runtime.
		info, err := json.Marshal(map[string]any{
			"name": c.Name, "sandboxID": c.SandboxID, "runtimeHandler": c.Handler, "config": c.Config,
			"pid": in.Pid, "bundle": in.Bundle, "runtimeSpec": in.Spec,
		})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListContainers answers from memory, with bytes encoded before where
// nothing changed (listcache.go).
func (s *Server) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	items, err := s.containerItems("ListContainers", req.GetFilter())
	if err != nil {
		return nil, err
	}
	return withItems(&runtimeapi.ListContainersResponse{}, items), nil
}

// containerItems are ListContainers' items, encoded.
func (s *Server) containerItems(rpc string, rf *runtimeapi.ContainerFilter) (rawItems, error) {
	if err := s.containersEnabled(rpc); err != nil {
		return rawItems{}, err
	}
	f := container.Filter{}
	if rf != nil {
		f.ID, f.SandboxID, f.Labels = rf.Id, rf.PodSandboxId, rf.LabelSelector
		if st := rf.GetState(); st != nil {
			var want container.State
			switch st.State {
			case runtimeapi.ContainerState_CONTAINER_CREATED:
				want = container.Created
			case runtimeapi.ContainerState_CONTAINER_RUNNING:
				want = container.Running
			case runtimeapi.ContainerState_CONTAINER_EXITED:
				want = container.Exited
			case runtimeapi.ContainerState_CONTAINER_UNKNOWN:
				return rawItems{}, nil
			default:
				return rawItems{}, errdefs.InvalidArgument("%s: unknown state filter %d", rpc, st.State)
			}
			f.State = &want
		}
	}
	key, err := filterKey(rf)
	if err != nil {
		return rawItems{}, err
	}
	gens := [3]uint64{s.containers.Generation()}
	if items, ok := s.lists.containers.get(key, gens, s.imageRefsHold); ok {
		return items, nil
	}
	cs := s.containers.List(f)
	refs := map[string]string{} // image ID → reference, once per call
	refOf := func(c *container.Container) string {
		r, ok := refs[c.ImageRef]
		if !ok {
			r = s.imageRefOf(c.ImageRef)
			refs[c.ImageRef] = r
		}
		return r
	}
	all := f.ID == "" && f.SandboxID == "" && f.State == nil && len(f.Labels) == 0
	items, err := s.lists.ctrItems.assemble(len(cs), all,
		func(i int) (string, itemKey) { return cs[i].ID, itemKey{ver: cs[i].Version, ref: refOf(&cs[i])} },
		func(i int) proto.Message {
			c := cs[i].CRI()
			c.ImageRef = refOf(&cs[i])
			return c
		})
	if err != nil {
		return rawItems{}, err
	}
	s.lists.containers.put(key, respKey{gens: gens, refs: sortedRefs(refs)}, items)
	return items, nil
}

// imageRefsHold tells whether each image ID still has the reference a
// cached answer showed for it.
func (s *Server) imageRefsHold(refs []imageRefPair) bool {
	for _, p := range refs {
		if s.imageRefOf(p.id) != p.ref {
			return false
		}
	}
	return true
}

// ExecSync runs a command in a container and returns its output (capped at
// 16 MiB per stream) and exit code.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	if err := s.containersEnabled("ExecSync"); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, errdefs.InvalidArgument("ExecSync: cmd is empty")
	}
	if req.Timeout < 0 {
		return nil, errdefs.InvalidArgument("ExecSync: negative timeout %d", req.Timeout)
	}
	res, err := s.containers.ExecSync(ctx, req.ContainerId, req.Cmd, seconds(req.Timeout))
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

// ReopenContainerLog makes the monitor reopen the log after kubelet rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	if err := s.containersEnabled("ReopenContainerLog"); err != nil {
		return nil, err
	}
	if err := s.containers.ReopenLog(ctx, req.ContainerId); err != nil {
		return nil, err
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// seconds converts a CRI timeout. Kubernetes does not bound a pod's grace
// period, and one past 292 years would overflow into a negative duration,
// which means kill at once: it is clamped to the longest duration instead.
func seconds(n int64) time.Duration {
	if n > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

// imageRef is the digested reference of the container's image when one is
// known (what containerd reports), else its ID.
func (s *Server) imageRef(c *container.Container) string { return s.imageRefOf(c.ImageRef) }

// imageRefOf is imageRef by image ID.
func (s *Server) imageRefOf(id string) string {
	if d, err := digest.Parse(id); err == nil {
		if digests := s.images.RepoDigests(d); len(digests) > 0 {
			return digests[0]
		}
	}
	return id
}
