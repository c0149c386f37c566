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

// interceptors check every request against the limits (limits.go) before
// its handler runs, turn a panic into codes.Internal (the daemon survives
// bad input), map domain errors to gRPC codes, and log each call: failures
// at warn, rate-limited (ratelog.go), the rest at debug so kubelet's 1 s
// polling does not flood the log. Each call is counted (obs) and, while
// tracing is on, gets a span (trace.go).
type interceptors struct {
	log *slog.Logger
	rl  *rateLog
	obs CallObserver
}

// CallObserver hears of every CRI call once it is answered: method is the
// RPC's short name (RunPodSandbox), code the gRPC code's name (OK).
type CallObserver interface {
	Call(method, code string, took time.Duration)
}

type noCalls struct{}

func (noCalls) Call(string, string, time.Duration) {}

// UnaryInterceptor is the unary interceptor of ServerOptions, with a rate
// limit of its own.
func UnaryInterceptor(log *slog.Logger) grpc.UnaryServerInterceptor {
	return (&interceptors{log: log, rl: newRateLog(logWindow, logKeys), obs: noCalls{}}).unary
}

// StreamInterceptor is the stream interceptor of ServerOptions, with a
// rate limit of its own.
func StreamInterceptor(log *slog.Logger) grpc.StreamServerInterceptor {
	return (&interceptors{log: log, rl: newRateLog(logWindow, logKeys), obs: noCalls{}}).stream
}

func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	method := path.Base(info.FullMethod)
	ctx, span := startCallSpan(ctx, info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			ic.panicked(method, r)
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = mapError(method, err)
		ic.logCall(ctx, method, start, err)
		ic.obs.Call(method, status.Code(err).String(), time.Since(start))
		endCallSpan(span, err)
	}()
	if err := checkRequest(method, req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	method := path.Base(info.FullMethod)
	ctx, span := startCallSpan(ss.Context(), info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			ic.panicked(method, r)
			err = status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		err = mapError(method, err)
		ic.logCall(ss.Context(), method, start, err)
		ic.obs.Call(method, status.Code(err).String(), time.Since(start))
		endCallSpan(span, err)
	}()
	return handler(srv, checkedStream{ServerStream: ss, method: method, ctx: ctx})
}

// checkedStream checks the request of a server-streaming RPC when its
// handler receives it, before the handler acts on it.
type checkedStream struct {
	grpc.ServerStream
	method string
	ctx    context.Context // carries the call's span
}

func (s checkedStream) Context() context.Context { return s.ctx }

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkRequest(s.method, m)
}

func (ic *interceptors) panicked(method string, r any) {
	stack := string(debug.Stack())
	msg := fmt.Sprint(r)
	ic.rl.log("panic\x00"+method+"\x00"+msg, "panic\x00"+method, func(repeats int) {
		ic.log.Error("panic in CRI handler", "method", method, "panic", msg, "repeated", repeats, "stack", stack)
	})
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
// or let time out (kubelet does that routinely). A failure repeated within
// logWindow is logged once more at the window's end, with its count.
func (ic *interceptors) logCall(ctx context.Context, method string, start time.Time, err error) {
	took := time.Since(start)
	if err == nil {
		ic.log.Debug("CRI call", "method", method, "took", took)
		return
	}
	code := status.Code(err)
	msg := status.Convert(err).Message()
	if code == codes.Unimplemented || code == codes.NotFound || ctx.Err() != nil {
		ic.log.Debug("CRI call failed", "method", method, "code", code.String(), "took", took, "err", msg)
		return
	}
	key := method + "\x00" + code.String()
	ic.rl.log(key+"\x00"+msg, key, func(repeats int) {
		if repeats == 0 {
			ic.log.Warn("CRI call failed", "method", method, "code", code.String(), "took", took, "err", msg)
			return
		}
		ic.log.Warn("CRI call failed repeatedly", "method", method, "code", code.String(), "err", msg,
			"repeated", repeats, "within", ic.rl.window)
	})
}
