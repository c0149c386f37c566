package cri

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates a pod's namespaces, files and network. kubelet's
// identical retry after its own timeout gets the first call's result.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "RunPodSandbox: pods are not enabled in this daemon")
	}
	if req.GetConfig() == nil {
		return nil, errdefs.InvalidArgument("RunPodSandbox: config is required")
	}
	if err := s.checkRuntimeHandler(req.RuntimeHandler); err != nil {
		return nil, err
	}
	id, err := s.pods.Run(ctx, req.Config, req.RuntimeHandler)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// StopPodSandbox stops the pod's containers and tears its network down. It
// is idempotent: an unknown pod is already stopped.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "StopPodSandbox: pods are not enabled in this daemon")
	}
	if req.PodSandboxId == "" {
		return nil, errdefs.InvalidArgument("StopPodSandbox: pod sandbox ID is required")
	}
	if err := s.pods.Stop(ctx, req.PodSandboxId); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod, its containers and every trace on disk;
// removing an unknown pod succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "RemovePodSandbox: pods are not enabled in this daemon")
	}
	if req.PodSandboxId == "" {
		return nil, errdefs.InvalidArgument("RemovePodSandbox: pod sandbox ID is required")
	}
	podID := ""
	if s.containers != nil {
		// The pod's containers go first; the sandbox's Remove stops it,
		// which stops them, but only removing them frees their disk.
		if sb, err := s.pods.Get(req.PodSandboxId); err == nil {
			podID = sb.ID
			if err := s.containers.RemoveSandbox(ctx, sb.ID); err != nil {
				return nil, err
			}
		}
	}
	if err := s.pods.Remove(ctx, req.PodSandboxId); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	if podID != "" {
		s.containers.SandboxRemoved(podID)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus answers from memory.
func (s *Server) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "PodSandboxStatus: pods are not enabled in this daemon")
	}
	sb, err := s.pods.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	// kubelet's Evented PLEG takes the pod's container statuses and their
	// time from this answer instead of asking container by container.
	resp := &runtimeapi.PodSandboxStatusResponse{
		Status:             toCRISandboxStatus(&sb),
		ContainersStatuses: s.podContainerStatuses(sb.ID),
		Timestamp:          time.Now().UnixNano(),
	}
	if req.Verbose {
		v := map[string]any{
			"name": sb.Name, "netns": sb.NetNS, "ipcns": sb.IPCNS, "utsns": sb.UTSNS, "pidns": sb.PIDNS,
			"hostname": sb.Hostname, "resolvConf": sb.ResolvConf, "hosts": sb.Hosts, "shm": sb.Shm,
			"network": sb.Network, "config": sb.Config, "resources": sb.Resources, "runtimeHandler": sb.Handler,
		}
		if sb.Sandboxed {
			// The runtime's sandbox: its container has the pod's ID.
			v["sandbox"] = map[string]any{"containerID": sb.ID, "runtimeHandler": sb.Handler}
		}
		info, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// ListPodSandbox answers from memory, with bytes encoded before where
// nothing changed (listcache.go).
func (s *Server) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	items, err := s.podSandboxItems("ListPodSandbox", req.GetFilter())
	if err != nil {
		return nil, err
	}
	return withItems(&runtimeapi.ListPodSandboxResponse{}, items), nil
}

// podSandboxItems are ListPodSandbox's items, encoded.
func (s *Server) podSandboxItems(rpc string, rf *runtimeapi.PodSandboxFilter) (rawItems, error) {
	if s.pods == nil {
		return rawItems{}, errdefs.New(errdefs.ErrUnimplemented, "%s: pods are not enabled in this daemon", rpc)
	}
	f := sandbox.Filter{}
	if rf != nil {
		f.ID = rf.Id
		f.LabelSelector = rf.LabelSelector
		if st := rf.GetState(); st != nil {
			switch st.State {
			case runtimeapi.PodSandboxState_SANDBOX_READY:
				f.State = sandbox.Ready
			case runtimeapi.PodSandboxState_SANDBOX_NOTREADY:
				f.State = sandbox.NotReady
			default:
				return rawItems{}, errdefs.InvalidArgument("%s: unknown state filter %d", rpc, st.State)
			}
		}
	}
	key, err := filterKey(rf)
	if err != nil {
		return rawItems{}, err
	}
	gens := [3]uint64{s.pods.Generation()}
	if items, ok := s.lists.pods.get(key, gens, nil); ok {
		return items, nil
	}
	pods := s.pods.ListShared(f)
	all := f.ID == "" && f.State == "" && len(f.LabelSelector) == 0
	items, err := s.lists.podItems.assemble(len(pods), all,
		func(i int) (string, itemKey) { return pods[i].ID, itemKey{ver: pods[i].Version} },
		func(i int) proto.Message { return criPodSandbox(pods[i]) })
	if err != nil {
		return rawItems{}, err
	}
	s.lists.pods.put(key, respKey{gens: gens}, items)
	return items, nil
}

func criPodSandbox(sb *sandbox.Sandbox) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:             sb.ID,
		Metadata:       sb.Metadata(),
		State:          sb.State.CRI(),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Labels(),
		Annotations:    sb.Annotations(),
		RuntimeHandler: sb.Handler,
	}
}

func toCRISandboxStatus(sb *sandbox.Sandbox) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.ID,
		Metadata:       sb.Metadata(),
		State:          sb.State.CRI(),
		CreatedAt:      sb.CreatedAt.UnixNano(),
		Labels:         sb.Labels(),
		Annotations:    sb.Annotations(),
		RuntimeHandler: sb.Handler,
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	for i, ip := range sb.IPs {
		if i == 0 {
			st.Network.Ip = ip.String()
			continue
		}
		st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip.String()})
	}
	return st
}
