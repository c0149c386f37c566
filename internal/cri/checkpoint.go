package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// The checkpoint RPCs check the request first (so a caller learns about
// its own mistakes whatever the node), then whether CRIU works here, which
// is checked once per daemon with a timeout. cradle does not drive CRIU
// yet, so even with a working one they answer Unimplemented; no path of
// theirs writes anything, so nothing partial is ever left at the caller's
// location.

// CheckpointContainer checkpoints a running container to an archive.
func (s *Server) CheckpointContainer(ctx context.Context, req *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if err := s.containersEnabled("CheckpointContainer"); err != nil {
		return nil, err
	}
	switch {
	case req.ContainerId == "":
		return nil, errdefs.InvalidArgument("CheckpointContainer: container_id is required")
	case req.Location == "":
		return nil, errdefs.InvalidArgument("CheckpointContainer: location is required")
	case !filepath.IsAbs(req.Location):
		return nil, errdefs.InvalidArgument("CheckpointContainer: location %q is not an absolute path", req.Location)
	case req.Timeout < 0:
		return nil, errdefs.InvalidArgument("CheckpointContainer: negative timeout %d", req.Timeout)
	}
	c, err := s.containers.Status(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.State != container.Running {
		return nil, errdefs.FailedPrecondition("CheckpointContainer: container %s is %s, not running", c.ID, c.State)
	}
	return nil, s.checkpointUnavailable(ctx, "CheckpointContainer")
}

// CheckpointPod checkpoints selected running containers of a pod into an
// empty directory.
func (s *Server) CheckpointPod(ctx context.Context, req *runtimeapi.CheckpointPodRequest) (*runtimeapi.CheckpointPodResponse, error) {
	if err := s.containersEnabled("CheckpointPod"); err != nil {
		return nil, err
	}
	if s.pods == nil {
		return nil, errdefs.New(errdefs.ErrUnimplemented, "CheckpointPod: pods are not enabled in this daemon")
	}
	switch {
	case req.PodSandboxId == "":
		return nil, errdefs.InvalidArgument("CheckpointPod: pod_sandbox_id is required")
	case len(req.ContainerIds) == 0:
		return nil, errdefs.InvalidArgument("CheckpointPod: container_ids must name at least one container")
	case len(req.Options) > 0:
		return nil, errdefs.InvalidArgument("CheckpointPod: cradle supports no checkpoint options, got %d", len(req.Options))
	}
	if err := emptyDir("CheckpointPod", "output_path", req.OutputPath); err != nil {
		return nil, err
	}
	pod, err := s.pods.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, id := range req.ContainerIds {
		c, err := s.containers.Status(id)
		if err != nil {
			return nil, err
		}
		switch {
		case seen[c.ID]:
			return nil, errdefs.InvalidArgument("CheckpointPod: container %s is named twice", c.ID)
		case c.SandboxID != pod.ID:
			return nil, errdefs.InvalidArgument("CheckpointPod: container %s belongs to pod %s, not %s", c.ID, c.SandboxID, pod.ID)
		case c.State != container.Running:
			return nil, errdefs.FailedPrecondition("CheckpointPod: container %s is %s, not running", c.ID, c.State)
		}
		seen[c.ID] = true
	}
	return nil, s.checkpointUnavailable(ctx, "CheckpointPod")
}

// RestorePod creates a pod and its containers from a checkpoint directory.
func (s *Server) RestorePod(ctx context.Context, req *runtimeapi.RestorePodRequest) (*runtimeapi.RestorePodResponse, error) {
	if err := s.containersEnabled("RestorePod"); err != nil {
		return nil, err
	}
	switch {
	case req.CheckpointPath == "":
		return nil, errdefs.InvalidArgument("RestorePod: checkpoint_path is required")
	case !filepath.IsAbs(req.CheckpointPath):
		return nil, errdefs.InvalidArgument("RestorePod: checkpoint_path %q is not an absolute path", req.CheckpointPath)
	case req.Config.GetMetadata() == nil:
		return nil, errdefs.InvalidArgument("RestorePod: config with metadata is required")
	case len(req.Options) > 0:
		return nil, errdefs.InvalidArgument("RestorePod: cradle supports no restore options, got %d", len(req.Options))
	case len(req.ContainerConfigs) == 0:
		return nil, errdefs.InvalidArgument("RestorePod: container_configs must not be empty")
	}
	if err := s.checkRuntimeHandler(req.RuntimeHandler); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, cfg := range req.ContainerConfigs {
		name := cfg.GetMetadata().GetName()
		if name == "" || names[name] {
			return nil, errdefs.InvalidArgument("RestorePod: container config names must be non-empty and unique, got %q", name)
		}
		names[name] = true
	}
	if fi, err := os.Stat(req.CheckpointPath); err != nil || !fi.IsDir() {
		return nil, errdefs.NotFound("RestorePod: checkpoint_path %q is not a directory", req.CheckpointPath)
	}
	return nil, s.checkpointUnavailable(ctx, "RestorePod")
}

// checkpointUnavailable says why a valid request cannot be served: no
// working CRIU (FailedPrecondition, with criu's own words), else that
// cradle does not drive it yet.
func (s *Server) checkpointUnavailable(ctx context.Context, rpc string) error {
	if err := s.criu.Check(ctx); err != nil {
		return fmt.Errorf("%s: %w", rpc, err)
	}
	return errdefs.New(errdefs.ErrUnimplemented, "%s: CRIU works on this node, but cradle does not checkpoint with it yet", rpc)
}

// emptyDir checks that path names an existing empty directory.
func emptyDir(rpc, field, path string) error {
	if path == "" {
		return errdefs.InvalidArgument("%s: %s is required", rpc, field)
	}
	if !filepath.IsAbs(path) {
		return errdefs.InvalidArgument("%s: %s %q is not an absolute path", rpc, field, path)
	}
	d, err := os.Open(path)
	if err != nil {
		return errdefs.InvalidArgument("%s: %s %q: %v", rpc, field, path, err)
	}
	defer d.Close()
	if fi, err := d.Stat(); err != nil || !fi.IsDir() {
		return errdefs.InvalidArgument("%s: %s %q is not a directory", rpc, field, path)
	}
	if _, err := d.Readdirnames(1); !errors.Is(err, io.EOF) {
		return errdefs.InvalidArgument("%s: %s %q is not an empty directory", rpc, field, path)
	}
	return nil
}
