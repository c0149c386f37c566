package errdefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestKindsMapToCodesThroughWrapping(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
	}{
		{nil, codes.OK},
		{NotFound("image %q", "x"), codes.NotFound},
		{fmt.Errorf("pull: %w", InvalidArgument("bad ref")), codes.InvalidArgument},
		{WithKind(ErrDataLoss, errors.New("sha256 mismatch")), codes.DataLoss},
		{New(ErrUnauthenticated, "401 from %s", "r"), codes.Unauthenticated},
		{Unavailable("dial"), codes.Unavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{context.Canceled, codes.Canceled},
		{errors.New("plain"), codes.Unknown},
		{fmt.Errorf("write record: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{WithKind(ErrUnavailable, fmt.Errorf("x: %w", syscall.EDQUOT)), codes.ResourceExhausted},
		{fmt.Errorf("x: %w", syscall.EROFS), codes.FailedPrecondition},
		{status.Error(codes.Aborted, "already a status"), codes.Aborted},
	}
	for _, tc := range cases {
		if got := Code(tc.err); got != tc.code {
			t.Errorf("Code(%v) = %v, want %v", tc.err, got, tc.code)
		}
		if tc.err == nil {
			continue
		}
		s := status.Convert(ToGRPC(tc.err))
		if s.Code() != tc.code || s.Message() != tc.err.Error() && tc.code != codes.Aborted {
			t.Errorf("ToGRPC(%v) = %v %q", tc.err, s.Code(), s.Message())
		}
	}
}

func TestWithKindKeepsMessageAndCause(t *testing.T) {
	cause := errors.New("connection refused")
	err := WithKind(ErrUnavailable, cause)
	if err.Error() != "connection refused" {
		t.Errorf("message changed: %q", err)
	}
	if !errors.Is(err, cause) || !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Error("errors.Is does not see the cause and only the kind")
	}
	if WithKind(ErrNotFound, nil) != nil {
		t.Error("WithKind(nil) must stay nil")
	}
}

func TestNoSpace(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("save: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}): true,
		WithKind(ErrUnavailable, fmt.Errorf("x: %w", syscall.EDQUOT)):                       true,
		fmt.Errorf("x: %w", syscall.EROFS):                                                  false,
		errors.New("no space left on device"):                                               false,
	} {
		if got := NoSpace(err); got != want {
			t.Errorf("NoSpace(%v) = %v, want %v", err, got, want)
		}
	}
}
