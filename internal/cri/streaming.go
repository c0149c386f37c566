package cri

import (
	"context"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/sandbox"
	"github.com/cradle-runtime/cradle/internal/stream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamURLs hands out the streaming server's single-use URLs
// (*stream.Server).
type StreamURLs interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// WithStreaming serves Exec, Attach and PortForward with URLs from urls.
func (s *Server) WithStreaming(urls StreamURLs) *Server {
	s.stream = urls
	return s
}

// StreamingPods adapts the pod manager to what the streaming runtime needs.
func StreamingPods(m *sandbox.Manager) stream.Pods { return streamPods{m} }

type streamPods struct{ m *sandbox.Manager }

func (p streamPods) NetNS(podID string) (string, error) {
	sb, err := p.m.Get(podID)
	if err != nil {
		return "", err
	}
	if sb.State != sandbox.Ready {
		return "", errdefs.FailedPrecondition("pod %s is %s, not ready", podID, sb.State)
	}
	return sb.NetNS, nil
}

// Exec checks the container runs before handing out the URL, so a wrong ID
// fails here and not later inside an HTTP upgrade.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if err := s.streamingEnabled("Exec"); err != nil {
		return nil, err
	}
	if len(req.Cmd) == 0 {
		return nil, errdefs.InvalidArgument("Exec: cmd is empty")
	}
	id, err := s.runningContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return s.stream.GetExec(&runtimeapi.ExecRequest{ContainerId: id, Cmd: req.Cmd, Tty: req.Tty,
		Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}

// Attach hands out the URL to attach to a running container's stdio.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if err := s.streamingEnabled("Attach"); err != nil {
		return nil, err
	}
	id, err := s.runningContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return s.stream.GetAttach(&runtimeapi.AttachRequest{ContainerId: id, Tty: req.Tty,
		Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
}

// PortForward hands out the URL to forward ports of a ready pod.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if err := s.streamingEnabled("PortForward"); err != nil {
		return nil, err
	}
	for _, p := range req.Port {
		if p <= 0 || p > 65535 {
			return nil, errdefs.InvalidArgument("PortForward: invalid port %d", p)
		}
	}
	sb, err := s.pods.Get(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if sb.State != sandbox.Ready {
		return nil, errdefs.FailedPrecondition("PortForward: pod %s is %s, not ready", sb.ID, sb.State)
	}
	return s.stream.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: sb.ID, Port: req.Port})
}

func (s *Server) streamingEnabled(method string) error {
	if s.stream == nil || s.containers == nil || s.pods == nil {
		return status.Errorf(codes.Unimplemented, "%s is not enabled", method)
	}
	return nil
}

func (s *Server) runningContainer(id string) (string, error) {
	if id == "" {
		return "", errdefs.InvalidArgument("container id is empty")
	}
	c, err := s.containers.Status(id)
	if err != nil {
		return "", err
	}
	if c.State != container.Running {
		return "", errdefs.FailedPrecondition("container %s is %s, not running", c.ID, c.State)
	}
	return c.ID, nil
}

// ListenStreaming starts the streaming server of cfg over the container and
// pod managers; the daemon closes it on shutdown.
func ListenStreaming(cfg config.StreamConfig, containers *container.Manager, pods *sandbox.Manager) (*stream.Server, error) {
	return stream.Listen(cfg, stream.NewRuntime(containers, StreamingPods(pods)))
}
