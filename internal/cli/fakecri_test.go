package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeCRI is an in-process CRI server that records every request, so tests
// assert exactly what the CLI sends and what it prints for known answers.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	mu         sync.Mutex
	images     []*runtimeapi.Image
	containers []*runtimeapi.Container
	info       map[string]string
	pullRef    string
	pullErr    error
	// pullGate, when set, holds PullImage until it is closed.
	pullGate chan struct{}

	versions       []*runtimeapi.VersionRequest
	statuses       []*runtimeapi.StatusRequest
	pulls          []*runtimeapi.PullImageRequest
	lists          []*runtimeapi.ListImagesRequest
	imageStatuses  []*runtimeapi.ImageStatusRequest
	removes        []*runtimeapi.RemoveImageRequest
	listContainers []*runtimeapi.ListContainersRequest

	// The pod and container side: see fakeruntime_test.go.
	rt fakeRuntimeState
	// Streaming, stats and events: see fakestream_test.go.
	st fakeStreamState
}

// serveFake starts f on a unix socket in a temp dir and returns its endpoint.
// image and runtime choose which services are registered.
func serveFake(t *testing.T, f *fakeCRI, image, runtime bool) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	if runtime {
		runtimeapi.RegisterRuntimeServiceServer(srv, f)
	}
	if image {
		runtimeapi.RegisterImageServiceServer(srv, f)
	}
	go srv.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

func record[M proto.Message](f *fakeCRI, list *[]M, req M) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*list = append(*list, proto.Clone(req).(M))
}

// requests returns a copy of a recorded list under the lock.
func requests[M any](f *fakeCRI, list *[]M) []M {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(*list)
}

func (f *fakeCRI) Version(_ context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	record(f, &f.versions, req)
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fake", RuntimeVersion: "9.9.9", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeCRI) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	record(f, &f.statuses, req)
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: false, Reason: "NoCNI", Message: "no network config"},
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "runc", Features: &runtimeapi.RuntimeHandlerFeatures{UserNamespaces: true}}},
		Features:        &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	if req.Verbose {
		f.mu.Lock()
		resp.Info = f.info
		f.mu.Unlock()
	}
	return resp, nil
}

func (f *fakeCRI) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	record(f, &f.pulls, req)
	f.mu.Lock()
	gate, ref, err := f.pullGate, f.pullRef, f.pullErr
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: ref}, nil
}

func (f *fakeCRI) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	record(f, &f.lists, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*runtimeapi.Image
	for _, im := range f.images {
		if name := req.GetFilter().GetImage().GetImage(); name != "" && !f.matches(im, name) {
			continue
		}
		out = append(out, im)
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// matches resolves a name the way a runtime does, minus normalisation: an
// ID, a tag or a digest reference.
func (f *fakeCRI) matches(im *runtimeapi.Image, name string) bool {
	return im.Id == name || slices.Contains(im.RepoTags, name) || slices.Contains(im.RepoDigests, name)
}

func (f *fakeCRI) find(name string) *runtimeapi.Image {
	for _, im := range f.images {
		if f.matches(im, name) {
			return im
		}
	}
	return nil
}

func (f *fakeCRI) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	record(f, &f.imageStatuses, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	im := f.find(req.GetImage().GetImage())
	if im == nil {
		return &runtimeapi.ImageStatusResponse{}, nil // the CRI's "not present"
	}
	resp := &runtimeapi.ImageStatusResponse{Image: im}
	if req.Verbose {
		resp.Info = map[string]string{"info": `{"chainIDs":["sha256:c1"],"pulledAt":"2024-01-02T03:04:05Z"}`}
	}
	return resp, nil
}

func (f *fakeCRI) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	record(f, &f.removes, req)
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(req.GetImage().GetImage(), "sha256:busy") {
		return nil, status.Error(codes.FailedPrecondition, "image is in use by a sandbox")
	}
	f.images = slices.DeleteFunc(f.images, func(im *runtimeapi.Image) bool { return im.Id == req.GetImage().GetImage() })
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (f *fakeCRI) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  1700000000000000000,
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: "/var/lib/fake"},
		UsedBytes:  &runtimeapi.UInt64Value{Value: 4261550},
		InodesUsed: &runtimeapi.UInt64Value{Value: 42},
	}}}, nil
}

// result is what one CLI run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// testEnv is an environment cut off from the host: no variables, empty stdin,
// no terminal.
func testEnv() (*environment, *syncBuffer, *syncBuffer) {
	out, errb := &syncBuffer{}, &syncBuffer{}
	return &environment{
		getenv:     func(string) string { return "" },
		stdin:      strings.NewReader(""),
		stdout:     out,
		stderr:     errb,
		isTerminal: func(any) bool { return false },
		exec: func(string, []string, []string) error {
			return errors.New("exec is not allowed in tests")
		},
	}, out, errb
}

// runCLI runs one command line against endpoint (given as -r when not empty).
func runCLI(t *testing.T, endpoint string, args ...string) result {
	t.Helper()
	env, _, _ := testEnv()
	return runCLIEnv(t, env, endpoint, args...)
}

func runCLIEnv(t *testing.T, env *environment, endpoint string, args ...string) result {
	t.Helper()
	if endpoint != "" {
		args = append([]string{"-r", endpoint}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, env)
	return result{stdout: env.stdout.(*syncBuffer).String(), stderr: env.stderr.(*syncBuffer).String(), code: code}
}

// syncBuffer is a bytes.Buffer safe for the spinner goroutine and a test
// reading at the same time.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
