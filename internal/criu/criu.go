// Package criu tells whether checkpoint/restore can work on this node: it
// runs `criu check` once, the first time someone asks, and keeps the
// verdict. A CRIU that cannot run on the kernel (Debian 12's criu 3.17 fails
// on 6.x kernels with vDSO errors) or that hangs must make checkpoint
// requests fail fast with the reason, never hang them.
package criu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// DefaultTimeout bounds `criu check`: it answers in well under a second
// (75 ms here), and the caller's own deadline may be as short as 10 s.
const DefaultTimeout = 5 * time.Second

// tailBytes is how much of criu's output a verdict quotes: its last lines
// name the failing check.
const tailBytes = 512

// Checker runs the check once. The zero value looks "criu" up in PATH and
// uses DefaultTimeout. Safe for concurrent use.
type Checker struct {
	// Path is the criu binary; "" looks up "criu" in PATH.
	Path string
	// Timeout bounds the check; 0 means DefaultTimeout.
	Timeout time.Duration

	once    sync.Once
	done    chan struct{} // closed once verdict is set
	verdict error
}

// Check returns nil when CRIU works, else an ErrFailedPrecondition error
// saying why. The first call runs the check; later calls, and calls made
// while it runs, share its verdict. A caller whose ctx ends first gets the
// ctx's error, and the check carries on for the next caller.
func (c *Checker) Check(ctx context.Context) error {
	c.once.Do(func() {
		c.done = make(chan struct{})
		go func() {
			c.verdict = c.run()
			close(c.done)
		}()
	})
	select {
	case <-c.done:
		return c.verdict
	case <-ctx.Done():
		return errdefs.WithKind(errdefs.ErrDeadlineExceeded, fmt.Errorf("waiting for `criu check`: %w", ctx.Err()))
	}
}

func (c *Checker) run() error {
	path := c.Path
	if path == "" {
		p, err := exec.LookPath("criu")
		if err != nil {
			return errdefs.FailedPrecondition("checkpoint/restore needs CRIU, which is not installed: no criu in PATH")
		}
		path = p
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "check")
	cmd.Stdout, cmd.Stderr = &out, &out
	// criu forks helpers: the whole group goes on timeout, and a helper
	// that keeps the output pipe cannot hold us past WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return errdefs.FailedPrecondition("checkpoint/restore needs a working CRIU: `%s check` did not answer within %s", path, timeout)
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, syscall.ENOENT):
		return errdefs.FailedPrecondition("checkpoint/restore needs CRIU, which is not installed: %v", err)
	case err != nil:
		return errdefs.FailedPrecondition("checkpoint/restore needs a working CRIU: `%s check` failed (%v): %s", path, err, tail(out.Bytes()))
	}
	return nil
}

// tail is the end of criu's output, on one line.
func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > tailBytes {
		// The cut may split a rune; a gRPC message must stay UTF-8.
		s = "…" + strings.ToValidUTF8(s[len(s)-tailBytes:], "")
	}
	if s == "" {
		return "no output"
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
