package cri

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"runtime/debug"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/version"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryInterceptor checks the request against the limits (limits.go) before
// its handler runs, turns a panic into codes.Internal (the daemon survives
// bad input), maps domain errors to gRPC codes, and logs each call: failures
// at warn, the rest at debug so kubelet's 1 s polling does not flood the log.
func UnaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		method := path.Base(info.FullMethod)
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in CRI handler", "method", method, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
			}
			err = mapError(method, err)
			logCall(ctx, log, method, start, err)
		}()
		if err := checkRequest(method, req); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor is UnaryInterceptor for server-streaming RPCs.
func StreamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		method := path.Base(info.FullMethod)
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic in CRI stream handler", "method", method, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
			}
			err = mapError(method, err)
			logCall(ss.Context(), log, method, start, err)
		}()
		return handler(srv, checkedStream{ServerStream: ss, method: method})
	}
}

// checkedStream checks the request of a server-streaming RPC when its
// handler receives it, before the handler acts on it.
type checkedStream struct {
	grpc.ServerStream
	method string
}

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkRequest(s.method, m)
}

func mapError(method string, err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
		// The generated stubs say "method X not implemented"; say whose.
		return status.Errorf(codes.Unimplemented, "%s is not implemented by %s %s yet", method, version.RuntimeName, version.Version)
	}
	return errdefs.ToGRPC(err)
}

// logCall logs at warn only what an operator should look at: not absent
// objects, not unimplemented RPCs, and not calls the client itself cancelled
// or let time out (kubelet does that routinely).
func logCall(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	took := time.Since(start)
	if err == nil {
		log.Debug("CRI call", "method", method, "took", took)
		return
	}
	code := status.Code(err)
	level := slog.LevelWarn
	if code == codes.Unimplemented || code == codes.NotFound || ctx.Err() != nil {
		level = slog.LevelDebug
	}
	log.Log(ctx, level, "CRI call failed", "method", method, "code", code.String(), "took", took, "err", fmt.Sprint(status.Convert(err).Message()))
}
