package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"golang.org/x/term"
	"k8s.io/client-go/tools/remotecommand"
)

// A session is one exec or attach stream wired to the user's stdio. With a
// terminal the local one is put in raw mode, so keys such as Ctrl-C reach the
// remote process rather than cradle, and its size follows the window.

// checkSession refuses, before any call reaches the runtime, a session that
// cannot work: a remote terminal needs a local one to type into.
func checkSession(env *environment, stdin, tty bool) error {
	if !tty {
		return nil
	}
	if !stdin {
		return &usageError{errors.New("-t needs -i: a terminal is only useful with input")}
	}
	if _, ok := terminalIn(env); !ok {
		return errdefs.FailedPrecondition("-t: stdin is not a terminal (drop -t to pipe input)")
	}
	return nil
}

func terminalIn(env *environment) (*os.File, bool) {
	f, ok := env.stdin.(*os.File)
	return f, ok && env.isTerminal(f)
}

// runSession streams until the remote process ends. Its exit code becomes
// an *exitCodeError, so cradle exits with it.
func runSession(ctx context.Context, env *environment, ex remotecommand.Executor, stdin, tty bool) error {
	opts := remotecommand.StreamOptions{Stdout: env.stdout, Tty: tty}
	if stdin {
		opts.Stdin = env.stdin
	}
	if !tty {
		// A terminal carries both output streams on one.
		opts.Stderr = env.stderr
		return sessionError(ex.StreamWithContext(ctx, opts))
	}
	in, _ := terminalIn(env)
	fd := int(in.Fd())
	saved, err := term.MakeRaw(fd)
	if err != nil {
		return fmt.Errorf("put the terminal in raw mode: %w", err)
	}
	defer term.Restore(fd, saved) //nolint:errcheck // nothing better to do on the way out
	sizeFd := fd
	if out, ok := env.stdout.(*os.File); ok && env.isTerminal(out) {
		sizeFd = int(out.Fd())
	}
	sizes := newSizeQueue(sizeFd)
	defer sizes.stop()
	opts.TerminalSizeQueue = sizes

	// Ctrl-P Ctrl-Q leaves the session and the remote process running, as
	// in crictl and docker. Ending stdin would tell the process its input
	// is over, so the session is cancelled instead.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	detach := newDetachReader(opts.Stdin, detachKeys, cancel)
	defer detach.close()
	opts.Stdin = detach
	err = ex.StreamWithContext(ctx, opts)
	if detach.detached() {
		term.Restore(fd, saved) //nolint:errcheck // as above; restored before the message
		fmt.Fprintln(env.stderr, "detached")
		return nil
	}
	return sessionError(err)
}

func sessionError(err error) error {
	var exit interface{ ExitStatus() int }
	if errors.As(err, &exit) {
		return &exitCodeError{exit.ExitStatus()}
	}
	return err
}

// sizeQueue hands remotecommand the terminal's size: once at the start and
// again on every SIGWINCH that changed it.
type sizeQueue struct {
	fd      int
	winch   chan os.Signal
	done    chan struct{}
	started bool
	last    remotecommand.TerminalSize
}

func newSizeQueue(fd int) *sizeQueue {
	q := &sizeQueue{fd: fd, winch: make(chan os.Signal, 1), done: make(chan struct{})}
	signal.Notify(q.winch, syscall.SIGWINCH)
	return q
}

// Next blocks until there is a size to send; nil ends the resize stream.
// remotecommand calls it from one goroutine only.
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if !q.started {
		q.started = true
		if s, ok := q.size(); ok {
			q.last = s
			return &s
		}
	}
	for {
		select {
		case <-q.done:
			return nil
		case <-q.winch:
			if s, ok := q.size(); ok && s != q.last {
				q.last = s
				return &s
			}
		}
	}
}

func (q *sizeQueue) size() (remotecommand.TerminalSize, bool) {
	w, h, err := term.GetSize(q.fd)
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return remotecommand.TerminalSize{}, false
	}
	return remotecommand.TerminalSize{Width: uint16(w), Height: uint16(h)}, true
}

func (q *sizeQueue) stop() {
	signal.Stop(q.winch)
	close(q.done)
}
