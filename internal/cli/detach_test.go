package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestDetachReader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
		detached       bool
	}{
		{"plain input", "hello\n", "hello\n", false},
		{"the sequence", "ls\x10\x11rest", "ls", true},
		{"sequence first", "\x10\x11", "", true},
		{"a lone first key is input", "a\x10b", "a\x10b", false},
		{"doubled first key", "a\x10\x10\x11", "a\x10", true},
		{"first key at the end of input", "a\x10", "a\x10", false},
		{"second key alone is input", "\x11x", "\x11x", false},
	} {
		for _, oneByte := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tc.in)
			if oneByte {
				r = iotest.OneByteReader(r)
			}
			calls := 0
			d := newDetachReader(r, detachKeys, func() { calls++ })
			var got bytes.Buffer
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = io.Copy(&got, d)
			}()
			if tc.detached {
				// After the sequence the reader holds on until closed.
				select {
				case <-done:
					t.Errorf("%s: the copy ended before close", tc.name)
				case <-time.After(50 * time.Millisecond):
				}
				d.close()
			}
			<-done
			if got.String() != tc.want || d.detached() != tc.detached || (calls == 1) != tc.detached {
				t.Errorf("%s (one byte %v): got %q detached %v calls %d, want %q %v", tc.name, oneByte, got.String(), d.detached(), calls, tc.want, tc.detached)
			}
		}
	}
}
