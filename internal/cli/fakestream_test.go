package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// fakeStreamState is the streaming, stats and events half of fakeCRI.
// Guarded by fakeCRI.mu.
type fakeStreamState struct {
	server streaming.Server

	ctrStats []*runtimeapi.ContainerStats
	podStats []*runtimeapi.PodSandboxStats
	// statsTick is added to every CPU timestamp and half of it to the CPU
	// time on each list call, so two samples show 50% CPU.
	statsTick int64
	statsErr  error
	// events are sent in order by GetContainerEvents, which then ends the
	// stream, or keeps it open when holdEvents is set.
	events     []*runtimeapi.ContainerEventResponse
	holdEvents bool
	eventsErr  error

	execReqs      []*runtimeapi.ExecRequest
	attachReqs    []*runtimeapi.AttachRequest
	forwardReqs   []*runtimeapi.PortForwardRequest
	ctrStatsReqs  []*runtimeapi.ListContainerStatsRequest
	podStatsReqs  []*runtimeapi.ListPodSandboxStatsRequest
	eventRequests int
}

// withStreaming starts an in-process cri-streaming server whose runtime is
// fakeStreamRuntime and makes f hand out its URLs.
func (f *fakeCRI) withStreaming(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	srv, err := streaming.NewServer(cfg, fakeStreamRuntime{})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })
	f.mu.Lock()
	f.st.server = srv
	f.mu.Unlock()
}

func (f *fakeCRI) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	record(f, &f.st.execReqs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.container(req.ContainerId) == nil {
		return nil, notFound("container", req.ContainerId)
	}
	if f.st.server == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	return f.st.server.GetExec(req)
}

func (f *fakeCRI) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	record(f, &f.st.attachReqs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.container(req.ContainerId) == nil {
		return nil, notFound("container", req.ContainerId)
	}
	if f.st.server == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	return f.st.server.GetAttach(req)
}

func (f *fakeCRI) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	record(f, &f.st.forwardReqs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pod(req.PodSandboxId) == nil {
		return nil, notFound("pod sandbox", req.PodSandboxId)
	}
	if f.st.server == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	return f.st.server.GetPortForward(req)
}

func (f *fakeCRI) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	record(f, &f.st.ctrStatsReqs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	fl := req.GetFilter()
	var out []*runtimeapi.ContainerStats
	for _, s := range f.st.ctrStats {
		f.tick(s.Cpu)
		a := s.GetAttributes()
		if (fl.GetId() != "" && a.GetId() != fl.GetId()) || !labelsMatch(a.GetLabels(), fl.GetLabelSelector()) {
			continue
		}
		if fl.GetPodSandboxId() != "" {
			if c := f.container(a.GetId()); c == nil || c.PodSandboxId != fl.GetPodSandboxId() {
				continue
			}
		}
		out = append(out, proto.Clone(s).(*runtimeapi.ContainerStats))
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

func (f *fakeCRI) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	record(f, &f.st.podStatsReqs, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.statsErr != nil {
		return nil, f.st.statsErr
	}
	fl := req.GetFilter()
	var out []*runtimeapi.PodSandboxStats
	for _, s := range f.st.podStats {
		f.tick(s.GetLinux().GetCpu())
		a := s.GetAttributes()
		if (fl.GetId() != "" && a.GetId() != fl.GetId()) || !labelsMatch(a.GetLabels(), fl.GetLabelSelector()) {
			continue
		}
		out = append(out, proto.Clone(s).(*runtimeapi.PodSandboxStats))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

// tick moves a running workload's CPU sample forward. Callers hold f.mu
// and answer with clones.
func (f *fakeCRI) tick(cpu *runtimeapi.CpuUsage) {
	if f.st.statsTick == 0 || cpu.GetUsageCoreNanoSeconds().GetValue() == 0 {
		return
	}
	cpu.Timestamp += f.st.statsTick
	cpu.UsageCoreNanoSeconds.Value += uint64(f.st.statsTick / 2)
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, srv runtimeapi.RuntimeService_GetContainerEventsServer) error {
	f.mu.Lock()
	f.st.eventRequests++
	events, hold, err := f.st.events, f.st.holdEvents, f.st.eventsErr
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, ev := range events {
		if err := srv.Send(ev); err != nil {
			return err
		}
	}
	if hold {
		<-srv.Context().Done()
		return status.FromContextError(srv.Context().Err()).Err()
	}
	return nil
}

// fakeStreamRuntime plays the container side of exec, attach and port
// forwarding. Exec commands:
//
//	cat             copies stdin to stdout
//	echo ARGS...    prints ARGS
//	exit N          prints "bye" on stderr and exits N
//	size            prints the first two terminal sizes it is sent, exits 5
type fakeStreamRuntime struct{}

func (fakeStreamRuntime) Exec(_ context.Context, _ string, cmd []string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan remotecommandserver.TerminalSize) error {
	switch cmd[0] {
	case "cat":
		if in != nil {
			_, err := io.Copy(out, in)
			return err
		}
		return nil
	case "echo":
		_, err := fmt.Fprintln(out, strings.Join(cmd[1:], " "))
		return err
	case "exit":
		code, _ := strconv.Atoi(cmd[1])
		fmt.Fprintln(errw, "bye")
		return utilexec.CodeExitError{Err: errors.New("exited"), Code: code}
	case "size":
		for range 2 {
			s, ok := <-resize
			if !ok {
				return errors.New("resize stream closed")
			}
			fmt.Fprintf(out, "size %dx%d\r\n", s.Width, s.Height)
		}
		return utilexec.CodeExitError{Err: errors.New("exited"), Code: 5}
	}
	return fmt.Errorf("fake runtime: unknown command %q", cmd[0])
}

// Attach greets, then echoes stdin until it ends.
func (fakeStreamRuntime) Attach(_ context.Context, _ string, in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommandserver.TerminalSize) error {
	if _, err := fmt.Fprintln(out, "attached"); err != nil {
		return err
	}
	if in == nil {
		return nil
	}
	_, err := io.Copy(out, in)
	return err
}

// PortForward answers each line on port 8080 with "pong LINE"; every other
// port refuses.
func (fakeStreamRuntime) PortForward(_ context.Context, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port != 8080 {
		return fmt.Errorf("dial port %d: connection refused", port)
	}
	r := bufio.NewReader(stream)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil
		}
		if _, err := fmt.Fprintf(stream, "pong %s", line); err != nil {
			return err
		}
	}
}
