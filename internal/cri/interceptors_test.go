package cri

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/image"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func call(t *testing.T, h grpc.UnaryHandler) error {
	t.Helper()
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	_, err := UnaryInterceptor(quiet)(context.Background(), nil, info, h)
	return err
}

func TestInterceptorTurnsPanicIntoInternal(t *testing.T) {
	err := call(t, func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic became %v", err)
	}
}

func TestInterceptorMapsDomainErrors(t *testing.T) {
	err := call(t, func(context.Context, any) (any, error) { return nil, errdefs.NotFound("pod %q", "p1") })
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != `pod "p1"` {
		t.Fatalf("got %v", err)
	}
}

func TestUnimplementedNamesMethodAndRuntime(t *testing.T) {
	var s Server
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/Attach"}
	_, err := UnaryInterceptor(quiet)(context.Background(), nil, info, func(ctx context.Context, req any) (any, error) {
		return s.Attach(ctx, &runtimeapi.AttachRequest{})
	})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "Attach is not implemented by cradle") {
		t.Fatalf("got %v", err)
	}
}

func TestToCRIImageUser(t *testing.T) {
	cases := map[string]struct {
		uid  int64
		name string
	}{"": {-1, ""}, "1000": {1000, ""}, "0:0": {0, ""}, "www-data": {-1, "www-data"}, "app:staff": {-1, "app"}}
	for user, want := range cases {
		var img image.Image
		img.Config.Config.User = user
		out := toCRIImage(&img)
		gotUID := int64(-1)
		if out.Uid != nil {
			gotUID = out.Uid.Value
		}
		if gotUID != want.uid || out.Username != want.name {
			t.Errorf("user %q → uid %d name %q, want %d %q", user, gotUID, out.Username, want.uid, want.name)
		}
		if out.RepoTags == nil || out.RepoDigests == nil {
			t.Errorf("nil lists leak into the CRI image")
		}
	}
}

func TestClientCancelledCallsAreNotWarnings(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.ImageService/PullImage"}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := UnaryInterceptor(log)(ctx, nil, info, func(ctx context.Context, _ any) (any, error) { return nil, ctx.Err() })
	if status.Code(err) != codes.Canceled {
		t.Fatalf("got %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("a client-cancelled call was logged at info or above: %s", buf.String())
	}
	// A failure of our own is a warning.
	_, _ = UnaryInterceptor(log)(context.Background(), nil, info, func(context.Context, any) (any, error) {
		return nil, errdefs.Unavailable("registry down")
	})
	if !strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "registry down") {
		t.Errorf("own failure not warned: %s", buf.String())
	}
}
