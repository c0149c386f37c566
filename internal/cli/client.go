package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
)

// defaultTimeout bounds connecting and every call but pulls, as in crictl.
const defaultTimeout = 2 * time.Second

// globalFlags are the options given before the verb.
type globalFlags struct {
	runtimeEndpoint string
	imageEndpoint   string
	timeout         time.Duration
	debug           bool
}

// client is the CRI connection of one command run. Each service is dialled
// on first use, so `cradle images` works against an image-only endpoint and
// `cradle config` dials nothing.
type client struct {
	flags globalFlags
	env   *environment
	log   *slog.Logger

	eps     *endpoints
	runtime internalapi.RuntimeService
	image   internalapi.ImageManagerService
}

type clientKey struct{}

// clientFor returns the CRI client of the running command.
func clientFor(cmd *cobra.Command) *client {
	if c, ok := cmd.Context().Value(clientKey{}).(*client); ok {
		return c
	}
	// Only reachable when a command runs outside Execute (a test building
	// one command alone): fall back to the process environment.
	return newClient(osEnvironment())
}

func newClient(env *environment) *client {
	return &client{
		flags: globalFlags{timeout: defaultTimeout},
		env:   env,
		log:   slog.New(slog.DiscardHandler),
	}
}

// withLogger returns ctx carrying the logger kubelet's client logs to: the
// debug log with --debug, else nothing. Without it the client prints its own
// klog error lines for every failed call, next to the CLI's error message.
func (c *client) withLogger(ctx context.Context, stderr io.Writer) context.Context {
	if !c.flags.debug {
		return klog.NewContext(ctx, logr.Discard())
	}
	h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	c.log = slog.New(h)
	return klog.NewContext(ctx, logr.FromSlogHandler(h))
}

func (c *client) endpoints() (endpoints, error) {
	if c.eps == nil {
		eps, err := resolveEndpoints(c.flags.runtimeEndpoint, c.flags.imageEndpoint, c.env.getenv)
		if err != nil {
			return endpoints{}, err
		}
		c.eps = &eps
	}
	return *c.eps, nil
}

func (c *client) timeout() (time.Duration, error) {
	if c.flags.timeout <= 0 {
		return 0, errdefs.InvalidArgument("--timeout must be positive, got %s", c.flags.timeout)
	}
	return c.flags.timeout, nil
}

// connect resolves the endpoint and timeout for one service and dials it with
// build, so both services share one error path.
func connect[T any](ctx context.Context, c *client, service string, pick func(endpoints) string,
	build func(ctx context.Context, endpoint string, timeout time.Duration) (T, error)) (T, error) {
	var zero T
	eps, err := c.endpoints()
	if err != nil {
		return zero, err
	}
	timeout, err := c.timeout()
	if err != nil {
		return zero, err
	}
	endpoint := pick(eps)
	c.log.Debug("connecting to the "+service+" service", "endpoint", endpoint, "timeout", timeout)
	svc, err := build(ctx, endpoint, timeout)
	if err != nil {
		return zero, connectError(ctx, endpoint, timeout, service, err)
	}
	return svc, nil
}

// Runtime returns the RuntimeService client, connecting on first use.
func (c *client) Runtime(ctx context.Context) (internalapi.RuntimeService, error) {
	if c.runtime != nil {
		return c.runtime, nil
	}
	// A nil tracer provider leaves out the OpenTelemetry handler: a
	// short-lived CLI exports no traces.
	svc, err := connect(ctx, c, "runtime", func(e endpoints) string { return e.runtime },
		func(ctx context.Context, ep string, timeout time.Duration) (internalapi.RuntimeService, error) {
			return remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(ep).WithConnectionTimeout(timeout).
				WithTracerProvider(nil).Build(ctx)
		})
	if err != nil {
		return nil, err
	}
	c.runtime = svc
	return svc, nil
}

// Image returns the ImageService client, connecting on first use.
func (c *client) Image(ctx context.Context) (internalapi.ImageManagerService, error) {
	if c.image != nil {
		return c.image, nil
	}
	svc, err := connect(ctx, c, "image", func(e endpoints) string { return e.image },
		func(ctx context.Context, ep string, timeout time.Duration) (internalapi.ImageManagerService, error) {
			return remote.NewRemoteImageServiceBuilder().WithEndpoint(ep).WithConnectionTimeout(timeout).
				WithTracerProvider(nil).Build(ctx)
		})
	if err != nil {
		return nil, err
	}
	c.image = svc
	return svc, nil
}

// Close releases the connections.
func (c *client) Close() {
	ctx := klog.NewContext(context.Background(), logr.Discard())
	if c.runtime != nil {
		_ = c.runtime.Close(ctx)
	}
	if c.image != nil {
		_ = c.image.Close(ctx)
	}
}

// connectError explains a failed first contact in one line a person can act
// on. gRPC only reports "Unavailable" with the dial error flattened into text,
// so on that code the socket is dialled once more to learn the cause.
func connectError(ctx context.Context, ep string, timeout time.Duration, service string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	prefix := fmt.Sprintf("cannot connect to the runtime at %s", ep)
	switch status.Code(err) {
	case codes.Unavailable:
		return errdefs.WithKind(errdefs.ErrUnavailable, fmt.Errorf("%s: %s", prefix, dialDiagnosis(ctx, ep, timeout)))
	case codes.DeadlineExceeded:
		return errdefs.New(errdefs.ErrUnavailable, "%s: no answer within %s (raise --timeout?)", prefix, timeout)
	case codes.Unimplemented:
		return errdefs.New(errdefs.ErrUnimplemented, "%s: it does not serve the CRI v1 %s service", prefix, service)
	}
	return errdefs.WithKind(errdefs.ErrUnavailable, fmt.Errorf("%s: %w", prefix, err))
}

func dialDiagnosis(ctx context.Context, ep string, timeout time.Duration) string {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "unix", socketPath(ep))
	if err == nil {
		conn.Close()
		return "the socket accepts connections but the gRPC connection failed (is it a CRI endpoint?)"
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		if ep == defaultEndpoint {
			return "is `cradle daemon` running?"
		}
		return "is a CRI runtime listening there?"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "permission denied (run as root, or as a member of the socket's group)"
	}
	return err.Error()
}

// rpcError turns a gRPC status error into an error of the matching errdefs
// kind whose message is the runtime's own description, so users read
// "image not known: busybox" rather than "rpc error: code = NotFound desc = …".
func rpcError(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, k := range kindOfCode {
		if k.code == st.Code() {
			return errdefs.New(k.kind, "%s", st.Message())
		}
	}
	if st.Code() == codes.Canceled {
		return context.Canceled
	}
	return errors.New(st.Message())
}

var kindOfCode = []struct {
	code codes.Code
	kind error
}{
	{codes.NotFound, errdefs.ErrNotFound},
	{codes.InvalidArgument, errdefs.ErrInvalidArgument},
	{codes.AlreadyExists, errdefs.ErrAlreadyExists},
	{codes.FailedPrecondition, errdefs.ErrFailedPrecondition},
	{codes.Unauthenticated, errdefs.ErrUnauthenticated},
	{codes.PermissionDenied, errdefs.ErrPermissionDenied},
	{codes.Unavailable, errdefs.ErrUnavailable},
	{codes.DeadlineExceeded, errdefs.ErrDeadlineExceeded},
	{codes.DataLoss, errdefs.ErrDataLoss},
	{codes.ResourceExhausted, errdefs.ErrResourceExhausted},
	{codes.Unimplemented, errdefs.ErrUnimplemented},
}
