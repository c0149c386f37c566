package cli

import (
	"context"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntimeState is the pod and container half of fakeCRI: pods, the
// answers it gives, and every request it was sent. Guarded by fakeCRI.mu.
type fakeRuntimeState struct {
	pods     []*runtimeapi.PodSandbox
	logPaths map[string]string // container ID → log path
	// exactIDFilter makes the ID filters match whole IDs only, as some
	// runtimes do.
	exactIDFilter bool

	newPodID, newCtrID       string
	createErr, startErr      error
	execStdout, execStderr   string
	execCode                 int32
	stopCtrErr, stopPodErr   error
	execErr                  error
	podStatusErr, ctrStatErr error

	runPods     []*runtimeapi.RunPodSandboxRequest
	stopPods    []*runtimeapi.StopPodSandboxRequest
	removePods  []*runtimeapi.RemovePodSandboxRequest
	podStatuses []*runtimeapi.PodSandboxStatusRequest
	listPods    []*runtimeapi.ListPodSandboxRequest
	creates     []*runtimeapi.CreateContainerRequest
	starts      []*runtimeapi.StartContainerRequest
	stopCtrs    []*runtimeapi.StopContainerRequest
	removeCtrs  []*runtimeapi.RemoveContainerRequest
	ctrStatuses []*runtimeapi.ContainerStatusRequest
	execs       []*runtimeapi.ExecSyncRequest
}

func (f *fakeCRI) idMatches(id, filter string) bool {
	if filter == "" {
		return true
	}
	if f.rt.exactIDFilter {
		return id == filter
	}
	return strings.HasPrefix(id, filter)
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeCRI) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	record(f, &f.listContainers, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := req.GetFilter()
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if !f.idMatches(c.Id, fl.GetId()) ||
			(fl.GetState() != nil && c.State != fl.GetState().GetState()) ||
			(fl.GetPodSandboxId() != "" && c.PodSandboxId != fl.GetPodSandboxId()) ||
			!labelsMatch(c.Labels, fl.GetLabelSelector()) {
			continue
		}
		out = append(out, c)
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (f *fakeCRI) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	record(f, &f.rt.listPods, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := req.GetFilter()
	var out []*runtimeapi.PodSandbox
	for _, p := range f.rt.pods {
		if !f.idMatches(p.Id, fl.GetId()) ||
			(fl.GetState() != nil && p.State != fl.GetState().GetState()) ||
			!labelsMatch(p.Labels, fl.GetLabelSelector()) {
			continue
		}
		out = append(out, p)
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func (f *fakeCRI) pod(id string) *runtimeapi.PodSandbox {
	for _, p := range f.rt.pods {
		if p.Id == id {
			return p
		}
	}
	return nil
}

func (f *fakeCRI) container(id string) *runtimeapi.Container {
	for _, c := range f.containers {
		if c.Id == id {
			return c
		}
	}
	return nil
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

func (f *fakeCRI) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	record(f, &f.rt.runPods, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.rt.newPodID
	f.rt.pods = append(f.rt.pods, &runtimeapi.PodSandbox{
		Id: id, Metadata: req.Config.Metadata, State: runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt: 1, Labels: req.Config.Labels, RuntimeHandler: req.RuntimeHandler,
	})
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (f *fakeCRI) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	record(f, &f.rt.stopPods, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.stopPodErr != nil {
		return nil, f.rt.stopPodErr
	}
	p := f.pod(req.PodSandboxId)
	if p == nil {
		return nil, notFound("pod sandbox", req.PodSandboxId)
	}
	p.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeCRI) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	record(f, &f.rt.removePods, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rt.pods = slices.DeleteFunc(f.rt.pods, func(p *runtimeapi.PodSandbox) bool { return p.Id == req.PodSandboxId })
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeCRI) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	record(f, &f.rt.podStatuses, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.podStatusErr != nil {
		return nil, f.rt.podStatusErr
	}
	p := f.pod(req.PodSandboxId)
	if p == nil {
		return nil, notFound("pod sandbox", req.PodSandboxId)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: p.Id, Metadata: p.Metadata, State: p.State, CreatedAt: p.CreatedAt,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.88.0.2"}, Labels: p.Labels, RuntimeHandler: p.RuntimeHandler,
	}}
	if req.Verbose {
		resp.Info = map[string]string{"info": `{"pid":42}`}
	}
	return resp, nil
}

func (f *fakeCRI) CreateContainer(_ context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	record(f, &f.rt.creates, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.createErr != nil {
		return nil, f.rt.createErr
	}
	id := f.rt.newCtrID
	f.containers = append(f.containers, &runtimeapi.Container{
		Id: id, PodSandboxId: req.PodSandboxId, Metadata: req.Config.Metadata, Image: req.Config.Image,
		State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: 1, Labels: req.Config.Labels,
	})
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

func (f *fakeCRI) StartContainer(_ context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	record(f, &f.rt.starts, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.startErr != nil {
		return nil, f.rt.startErr
	}
	c := f.container(req.ContainerId)
	if c == nil {
		return nil, notFound("container", req.ContainerId)
	}
	c.State = runtimeapi.ContainerState_CONTAINER_RUNNING
	return &runtimeapi.StartContainerResponse{}, nil
}

func (f *fakeCRI) StopContainer(_ context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	record(f, &f.rt.stopCtrs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.stopCtrErr != nil {
		return nil, f.rt.stopCtrErr
	}
	c := f.container(req.ContainerId)
	if c == nil {
		return nil, notFound("container", req.ContainerId)
	}
	c.State = runtimeapi.ContainerState_CONTAINER_EXITED
	return &runtimeapi.StopContainerResponse{}, nil
}

func (f *fakeCRI) RemoveContainer(_ context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	record(f, &f.rt.removeCtrs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = slices.DeleteFunc(f.containers, func(c *runtimeapi.Container) bool { return c.Id == req.ContainerId })
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	record(f, &f.rt.ctrStatuses, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.ctrStatErr != nil {
		return nil, f.rt.ctrStatErr
	}
	c := f.container(req.ContainerId)
	if c == nil {
		return nil, notFound("container", req.ContainerId)
	}
	ref := c.ImageRef
	if ref == "" {
		ref = c.Image.GetImage()
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{
		Id: c.Id, Metadata: c.Metadata, State: c.State, CreatedAt: c.CreatedAt, Image: c.Image,
		ImageRef: ref, Labels: maps.Clone(c.Labels), LogPath: f.rt.logPaths[c.Id],
	}}
	if req.Verbose {
		resp.Info = map[string]string{"info": `{"pid":7}`}
	}
	return resp, nil
}

func (f *fakeCRI) ExecSync(_ context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	record(f, &f.rt.execs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rt.execErr != nil {
		return nil, f.rt.execErr
	}
	if f.container(req.ContainerId) == nil {
		return nil, notFound("container", req.ContainerId)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: []byte(f.rt.execStdout), Stderr: []byte(f.rt.execStderr), ExitCode: f.rt.execCode}, nil
}

// setContainerState changes a container's state under the lock, as the
// runtime would when it exits.
func (f *fakeCRI) setContainerState(id string, st runtimeapi.ContainerState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.container(id).State = st
}
