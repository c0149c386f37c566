// Package errdefs defines the error kinds that cradle's domain packages return
// and the single place where they become gRPC status codes. Domain code wraps a
// kind with context (fmt.Errorf("...: %w", errdefs.ErrNotFound)) and never
// imports gRPC; the CRI layer calls ToGRPC once per request.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error kinds. Each maps to exactly one gRPC code in ToGRPC.
var (
	ErrNotFound           = errors.New("not found")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrAlreadyExists      = errors.New("already exists")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrUnavailable        = errors.New("unavailable")
	ErrDeadlineExceeded   = errors.New("deadline exceeded")
	ErrDataLoss           = errors.New("data corrupted")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrUnimplemented      = errors.New("not implemented")
)

// kinded attaches a kind to an error without changing its message, so a message
// reads naturally ("pull docker.io/x:1: manifest unknown") while errors.Is still
// finds the kind.
type kinded struct {
	kind error
	err  error
}

func (k *kinded) Error() string        { return k.err.Error() }
func (k *kinded) Unwrap() []error      { return []error{k.err, k.kind} }
func (k *kinded) Is(target error) bool { return target == k.kind }

// WithKind returns err marked as kind. A nil err stays nil.
func WithKind(kind, err error) error {
	if err == nil {
		return nil
	}
	return &kinded{kind: kind, err: err}
}

// New formats a message and marks it as kind.
func New(kind error, format string, args ...any) error {
	return &kinded{kind: kind, err: fmt.Errorf(format, args...)}
}

// NotFound, InvalidArgument, ... are shorthands for New(ErrX, ...).
func NotFound(format string, args ...any) error { return New(ErrNotFound, format, args...) }
func InvalidArgument(format string, args ...any) error {
	return New(ErrInvalidArgument, format, args...)
}
func FailedPrecondition(format string, args ...any) error {
	return New(ErrFailedPrecondition, format, args...)
}
func AlreadyExists(format string, args ...any) error { return New(ErrAlreadyExists, format, args...) }
func Unavailable(format string, args ...any) error   { return New(ErrUnavailable, format, args...) }

// codeOf maps kinds to codes, first match wins. A full or read-only disk
// comes first, whatever kind a caller gave its error: the errno is the
// cause a person must act on (free space, remount), and kubelet's retry
// succeeds once they have. ENOSPC and EDQUOT are ResourceExhausted ("the
// entire file system is out of space" is gRPC's own example), EROFS is
// FailedPrecondition (the node is not in a state to write).
var codeOf = []struct {
	kind error
	code codes.Code
}{
	{syscall.ENOSPC, codes.ResourceExhausted},
	{syscall.EDQUOT, codes.ResourceExhausted},
	{syscall.EROFS, codes.FailedPrecondition},
	{ErrNotFound, codes.NotFound},
	{ErrInvalidArgument, codes.InvalidArgument},
	{ErrAlreadyExists, codes.AlreadyExists},
	{ErrFailedPrecondition, codes.FailedPrecondition},
	{ErrUnauthenticated, codes.Unauthenticated},
	{ErrPermissionDenied, codes.PermissionDenied},
	{ErrUnavailable, codes.Unavailable},
	{ErrDeadlineExceeded, codes.DeadlineExceeded},
	{ErrDataLoss, codes.DataLoss},
	{ErrResourceExhausted, codes.ResourceExhausted},
	{ErrUnimplemented, codes.Unimplemented},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// NoSpace reports whether err is a full disk or an exhausted quota
// somewhere in its chain.
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Code returns the gRPC code for err's kind, codes.Unknown when it has none.
func Code(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	for _, c := range codeOf {
		if errors.Is(err, c.kind) {
			return c.code
		}
	}
	return codes.Unknown
}

// ToGRPC converts a domain error to a gRPC status error carrying its message.
// Errors that already are gRPC statuses pass through unchanged.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}
