package stream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// packets replays conmon attach packets one Read at a time.
type packets struct{ p [][]byte }

func (r *packets) Read(b []byte) (int, error) {
	if len(r.p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.p[0])
	r.p = r.p[1:]
	return n, nil
}

func TestCopyAttachOutputDemultiplexesConmonPackets(t *testing.T) {
	in := &packets{p: [][]byte{
		append([]byte{attachStdout}, "out1 "...),
		append([]byte{attachStderr}, "err1"...),
		append([]byte{9}, "unknown stream is dropped"...),
		append([]byte{attachStdout}, "out2"...),
	}}
	var out, errOut bytes.Buffer
	if err := copyAttachOutput(in, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "out1 out2" || errOut.String() != "err1" {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}

	// With a tty there is no stderr stream: it goes to stdout.
	in = &packets{p: [][]byte{append([]byte{attachStderr}, "e"...), append([]byte{attachStdout}, "o"...)}}
	out.Reset()
	if err := copyAttachOutput(in, &out, nil); err != nil || out.String() != "eo" {
		t.Errorf("tty: %q %v", out.String(), err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestCopyAttachOutputReportsReadErrors(t *testing.T) {
	if err := copyAttachOutput(failingReader{}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v", err)
	}
}

type nopRWC struct{ io.ReadWriter }

func (nopRWC) Close() error { return nil }

func TestPortForwardRejectsBadPortsBeforeTouchingThePod(t *testing.T) {
	r := NewRuntime(nil, nil) // a pod lookup would panic
	for _, port := range []int32{0, -1, 65536} {
		err := r.PortForward(context.Background(), "pod", port, nopRWC{&bytes.Buffer{}})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("port %d: %v", port, err)
		}
	}
}
