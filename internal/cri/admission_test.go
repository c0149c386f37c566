package cri

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// blockingRuntime holds Version calls asking for "block" and every event
// stream until its client leaves.
type blockingRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	release chan struct{}
	entered chan string
}

func (b *blockingRuntime) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	switch req.Version {
	case "block":
		b.entered <- "call"
		select {
		case <-b.release:
		case <-ctx.Done():
		}
	case "fail":
		return nil, errors.New("failed")
	}
	return &runtimeapi.VersionResponse{}, nil
}

func (b *blockingRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, ss grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	b.entered <- "watch"
	<-ss.Context().Done()
	return ss.Context().Err()
}

// serveCapped serves b with the daemon's options but the given caps on a
// unix socket; dial opens a new connection each time.
func serveCapped(t *testing.T, calls, watches int, b *blockingRuntime) (dial func() runtimeapi.RuntimeServiceClient) {
	t.Helper()
	dialConn := serveCappedConn(t, calls, watches, b)
	return func() runtimeapi.RuntimeServiceClient { return runtimeapi.NewRuntimeServiceClient(dialConn()) }
}

func serveCappedConn(t *testing.T, calls, watches int, b *blockingRuntime) (dial func() *grpc.ClientConn) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(serverOptions(quiet, nil, calls, watches)...)
	runtimeapi.RegisterRuntimeServiceServer(srv, b)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return func() *grpc.ClientConn {
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
}

func newBlocking() *blockingRuntime {
	return &blockingRuntime{release: make(chan struct{}), entered: make(chan string, 64)}
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCallsBeyondTheCapAreRefused(t *testing.T) {
	b := newBlocking()
	dial := serveCapped(t, 2, 1, b)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 2 {
		c := dial()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Version(ctx, &runtimeapi.VersionRequest{Version: "block"})
		}()
	}
	<-b.entered
	<-b.entered
	_, err := dial().Version(ctx, &runtimeapi.VersionRequest{})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "2 calls are in flight") {
		t.Fatalf("third call: %v", err)
	}
	close(b.release)
	wg.Wait()
	eventually(t, "a call after the others ended", func() error {
		_, err := dial().Version(ctx, &runtimeapi.VersionRequest{})
		return err
	})
}

// kubelet's one connection queues in its own client instead of being
// refused: the connection's stream limit is the cap.
func TestOneConnectionWaitsInsteadOfBeingRefused(t *testing.T) {
	b := newBlocking()
	c := serveCapped(t, 2, 1, b)()
	ctx := context.Background()
	// The server's stream limit arrives with its first settings.
	if _, err := c.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Version(ctx, &runtimeapi.VersionRequest{Version: "block"})
			errs <- err
		}()
	}
	<-b.entered
	<-b.entered
	close(b.release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("a call on the one connection failed: %v", err)
		}
	}
}

// Event streams never take the slots of calls, and have a cap of their own.
func TestWatchesDoNotStarveCalls(t *testing.T) {
	b := newBlocking()
	dial := serveCapped(t, 2, 2, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		s, err := dial().GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		go s.Recv()
		<-b.entered
	}
	for range 3 {
		if _, err := dial().Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
			t.Fatalf("a call with every watch slot taken: %v", err)
		}
	}
	s, err := dial().GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "event streams") {
		t.Fatalf("a third watch: %v", err)
	}
}

// A slot comes back however the call ends: failed, cancelled by its
// client, an unknown method, a request that does not decode.
func TestSlotsComeBackOnEveryEnding(t *testing.T) {
	b := newBlocking()
	dialConn := serveCappedConn(t, 2, 1, b)
	conn := dialConn()
	c := runtimeapi.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	for range 10 {
		if _, err := c.Version(ctx, &runtimeapi.VersionRequest{Version: "fail"}); status.Code(err) != codes.Unknown {
			t.Fatalf("failing call: %v", err)
		}
		if _, err := c.Status(ctx, &runtimeapi.StatusRequest{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("unimplemented call: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			<-b.entered
			cancel()
		}()
		if _, err := c.Version(cctx, &runtimeapi.VersionRequest{Version: "block"}); status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled call: %v", err)
		}
		// The client sees the cancel before the server's handler returns:
		// its slot comes back a moment later.
		eventually(t, "the cancelled call's slot comes back", func() error {
			_, err := c.Version(ctx, &runtimeapi.VersionRequest{Version: "fail"})
			if status.Code(err) == codes.ResourceExhausted {
				return err
			}
			return nil
		})
		err := conn.Invoke(ctx, "/runtime.v1.RuntimeService/NoSuchMethod", &runtimeapi.VersionRequest{}, &runtimeapi.VersionResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("unknown method: %v", err)
		}
		// Field 1 of VersionRequest is a string: invalid UTF-8 does not
		// decode.
		err = conn.Invoke(ctx, "/runtime.v1.RuntimeService/Version", wrapperspb.Bytes([]byte{0xff}), &runtimeapi.VersionResponse{})
		if status.Code(err) != codes.Internal {
			t.Fatalf("undecodable request: %v", err)
		}
	}
	for range 2 {
		eventually(t, "calls after many endings", func() error {
			_, err := runtimeapi.NewRuntimeServiceClient(dialConn()).Version(ctx, &runtimeapi.VersionRequest{})
			return err
		})
	}
}

func TestOversizedMetadataIsRefused(t *testing.T) {
	b := newBlocking()
	c := serveCapped(t, 2, 1, b)()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-big", strings.Repeat("x", MaxHeaderBytes))
	_, err := c.Version(ctx, &runtimeapi.VersionRequest{})
	if err == nil {
		t.Fatal("a call with 64 KiB of metadata was served")
	}
	t.Logf("refused: %v", err)
	small := metadata.AppendToOutgoingContext(context.Background(), "x-small", strings.Repeat("x", 1024))
	if _, err := c.Version(small, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("a call with 1 KiB of metadata: %v", err)
	}
}
