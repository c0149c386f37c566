package cri

import (
	"context"
	"log/slog"
	"path"
	"runtime"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Calls in flight are capped so that a flood cannot exhaust the daemon's
// memory: each call holds its request (up to MaxMsgSize) and whatever its
// handler builds (an ExecSync up to 32 MiB of output).
//
// The cap is taken in the transport's tap, when a call's headers arrive and
// before its message is read, so a refused call costs no buffer; the slot
// is given back when the call's stream ends, however it ends. Beyond the cap
// a call fails at once with ResourceExhausted (retryable) instead of
// queueing in memory.
//
// Each connection also advertises MaxCallsInFlight as its HTTP/2 stream
// limit, so one client alone (kubelet has one connection per service) waits
// in its own gRPC client for a free stream rather than being refused; only
// many clients together reach the shared cap.
//
// GetContainerEvents streams live as long as their client: they have their
// own small cap, so watchers can never take the slots calls need, nor a
// flood of calls shut out kubelet's one watch.
const (
	// MaxMsgSize is the largest request and response: kubelet's client
	// limit (cri-client's 16 MiB).
	MaxMsgSize = 16 << 20
	// MaxCallsInFlight bounds unary calls and the short Stream* list
	// calls together, over all connections: about 2 GiB of requests at
	// worst, where kubelet's own calls are a few KiB.
	MaxCallsInFlight = 128
	// MaxWatchesInFlight bounds GetContainerEvents streams; kubelet
	// keeps one.
	MaxWatchesInFlight = 16
	// MaxHeaderBytes bounds a call's metadata, which is read, and held
	// for the whole call, before the caps are checked (gRPC's default is
	// 16 MiB). kubelet sends a few hundred bytes.
	MaxHeaderBytes = 64 << 10
)

// longLived are the RPCs that stay open until the client leaves.
var longLived = map[string]bool{
	"/runtime.v1.RuntimeService/GetContainerEvents": true,
}

// admission holds the two caps.
type admission struct {
	calls, watches chan struct{}
	log            *slog.Logger
	rl             *rateLog
	obs            CallObserver
}

func newAdmission(calls, watches int, log *slog.Logger, rl *rateLog) *admission {
	return &admission{calls: make(chan struct{}, calls), watches: make(chan struct{}, watches), log: log, rl: rl}
}

// tap takes a slot for the call or refuses it; the slot is released when
// ctx, the stream's context, ends.
func (a *admission) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	sem, what := a.calls, "calls"
	if longLived[info.FullMethodName] {
		sem, what = a.watches, "event streams"
	}
	select {
	case sem <- struct{}{}:
		context.AfterFunc(ctx, func() { <-sem })
		return ctx, nil
	default:
	}
	method := path.Base(info.FullMethodName)
	if a.obs != nil {
		a.obs.Call(method, codes.ResourceExhausted.String(), 0)
	}
	err := status.Errorf(codes.ResourceExhausted, "%s: %d %s are in flight, the most cradle serves at once; retry later", method, cap(sem), what)
	a.rl.log("refused\x00"+method, "refused\x00"+method, func(repeats int) {
		a.log.Warn("CRI call refused: too many in flight", "method", method, "limit", cap(sem), "repeated", repeats)
	})
	return nil, err
}

// ServerOptions are the gRPC server options of the CRI socket: message
// size limits, the in-flight caps, and the interceptors, sharing one rate
// limit on repeated log lines. obs, if not nil, hears of every call
// answered or refused (metrics).
func ServerOptions(log *slog.Logger, obs CallObserver) []grpc.ServerOption {
	return serverOptions(log, obs, MaxCallsInFlight, MaxWatchesInFlight)
}

func serverOptions(log *slog.Logger, obs CallObserver, calls, watches int) []grpc.ServerOption {
	if obs == nil {
		obs = noCalls{}
	}
	rl := newRateLog(logWindow, logKeys)
	a := newAdmission(calls, watches, log, rl)
	a.obs = obs
	ic := &interceptors{log: log, rl: rl, obs: obs}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMsgSize),
		grpc.MaxSendMsgSize(MaxMsgSize),
		grpc.MaxHeaderListSize(MaxHeaderBytes),
		grpc.InTapHandle(a.tap),
		grpc.MaxConcurrentStreams(uint32(calls)),
		// Calls run on long-lived workers (one per CPU; a call finding all
		// busy gets a goroutine of its own, as without them): no goroutine
		// to start and no stack to grow per call, which kubelet's relists
		// pay every second. ~5 µs a call here.
		grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.ChainUnaryInterceptor(ic.unary),
		grpc.ChainStreamInterceptor(ic.stream),
	}
}
