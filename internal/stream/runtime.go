package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/oci"
	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// Containers is what streaming needs of the container manager.
type Containers interface {
	// Exec runs cmd in a running container and returns its exit code.
	Exec(ctx context.Context, id string, cmd []string, s oci.StreamIO) (int, error)
	// AttachSocket is the running container's conmon attach socket.
	AttachSocket(id string) (string, error)
	// ResizeTerminal resizes a running tty container's terminal.
	ResizeTerminal(id string, width, height uint16) error
}

// Pods is what streaming needs of the pod manager.
type Pods interface {
	// NetNS is the path of the pod's network namespace; "" means the
	// pod shares the host's.
	NetNS(podID string) (string, error)
}

// ttyDrainTimeout bounds how long a tty exec's output is read after the
// command exited.
const ttyDrainTimeout = 2 * time.Second

// initialSizeWait bounds the wait for a tty exec's first terminal size: a
// client that sends none gets runc's default size after it.
const initialSizeWait = time.Second

// Runtime implements streaming.Runtime.
type Runtime struct {
	containers Containers
	pods       Pods
}

var _ streaming.Runtime = (*Runtime)(nil)

// NewRuntime returns a streaming runtime over containers and pods.
func NewRuntime(containers Containers, pods Pods) *Runtime {
	return &Runtime{containers: containers, pods: pods}
}

// Exec runs cmd in the container. With tty the command runs on a
// terminal (stderr then goes to out, as clients expect) whose window size
// follows the resize events. A non-zero exit code is reported as a
// utilexec.ExitError so the streaming server relays it to the client.
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	var (
		code int
		err  error
	)
	if tty {
		code, err = r.execTTY(ctx, containerID, cmd, in, out, resize)
	} else {
		s := oci.StreamIO{}
		// Typed nils would make exec.Cmd write into a nil interface value.
		if in != nil {
			s.Stdin = in
		}
		if out != nil {
			s.Stdout = out
		}
		if errw != nil {
			s.Stderr = errw
		}
		code, err = r.containers.Exec(ctx, containerID, cmd, s)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with %d", cmd, code), Code: code}
	}
	return nil
}

func (r *Runtime) execTTY(ctx context.Context, id string, cmd []string, in io.Reader, out io.Writer, resize <-chan remotecommandserver.TerminalSize) (int, error) {
	p, err := openPTY()
	if err != nil {
		return -1, err
	}
	defer p.main.Close()
	replica := p.replica
	defer func() {
		if replica != nil {
			replica.Close()
		}
	}()

	// Clients send the terminal size first thing. runc reads the size once
	// as it starts and listens for SIGWINCH only later, so a size that
	// arrives in between is lost: take the first one before starting runc,
	// which gives it to the command's terminal as it creates it.
	var first remotecommandserver.TerminalSize
	if resize != nil {
		select {
		case sz, ok := <-resize:
			if ok {
				_ = p.setSize(sz.Width, sz.Height)
				first = sz
			}
		case <-time.After(initialSizeWait):
		case <-ctx.Done():
		}
	}

	winch := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	wg.Go(func() {
		for {
			select {
			case sz, ok := <-resize:
				if !ok {
					return
				}
				if p.setSize(sz.Width, sz.Height) == nil {
					select {
					case winch <- struct{}{}:
					default: // runc reads the size when it gets to it
					}
				}
			case <-stop:
				return
			}
		}
	})
	if in != nil {
		// Ends when the client closes stdin or the terminal is closed.
		go func() { _, _ = io.Copy(p.main, in) }()
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		if out == nil {
			out = io.Discard
		}
		_, _ = io.Copy(out, p.main)
	}()

	code, err := r.containers.Exec(ctx, id, cmd, oci.StreamIO{Stdin: replica, Stdout: replica, Stderr: replica, Terminal: true, Winch: winch,
		Width: first.Width, Height: first.Height})
	// With the last replica closed, reads of main return what runc wrote
	// and then fail, which ends the copy; a background process holding
	// runc's relay is not waited for beyond ttyDrainTimeout.
	replica.Close()
	replica = nil
	select {
	case <-copied:
	case <-time.After(ttyDrainTimeout):
	}
	return code, err
}

// Attach connects to the container's conmon attach socket: its output
// packets go to out/errw and stdin (if any) is written back to conmon,
// which feeds it to the container when it was created with stdin.
// For a tty container, resize events go to conmon, which sizes the
// container's terminal; otherwise they are drained so the client never
// blocks.
func (r *Runtime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	path, err := r.containers.AttachSocket(containerID)
	if err != nil {
		return err
	}
	conn, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return errdefs.FailedPrecondition("attach %s: connect to monitor: %v", containerID, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if resize != nil {
		go func() {
			for sz := range resize {
				if !tty || sz.Width == 0 || sz.Height == 0 {
					continue
				}
				// An error means the container has just exited: the
				// attach ends with its output.
				_ = r.containers.ResizeTerminal(containerID, sz.Width, sz.Height)
			}
		}()
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(conn, in)
			// Stdin ended: let conmon see EOF without dropping the output.
			_ = conn.CloseWrite()
		}()
	}
	return copyAttachOutput(conn, out, errw)
}

// conmon's attach packets start with the stream they carry.
const (
	attachStdout = 2
	attachStderr = 3
	// attachBufSize is conmon's stdio buffer plus the stream byte.
	attachBufSize = 8192 + 1
)

// copyAttachOutput demultiplexes conmon's packets until the socket closes.
func copyAttachOutput(conn io.Reader, out, errw io.Writer) error {
	buf := make([]byte, attachBufSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			dst := io.Writer(nil)
			switch buf[0] {
			case attachStdout:
				dst = out
			case attachStderr:
				dst = errw
				if dst == nil {
					dst = out // a tty merges the streams
				}
			}
			if dst != nil {
				if _, werr := dst.Write(buf[1:n]); werr != nil {
					return nil // the client went away
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("attach: read from monitor: %w", err)
		}
		if n == 0 {
			return nil
		}
	}
}

// PortForward connects stream to 127.0.0.1:port inside the pod's network
// namespace. The socket is created in the namespace; once connected it
// stays there, so the copying runs on ordinary goroutines.
func (r *Runtime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port <= 0 || port > 65535 {
		return errdefs.InvalidArgument("port forward: invalid port %d", port)
	}
	ns, err := r.pods.NetNS(podSandboxID)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func() error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", addr)
		conn = c
		return err
	}
	if ns == "" {
		err = dial()
	} else {
		err = netns.Do(ns, dial)
	}
	if err != nil {
		return errdefs.Unavailable("port forward to %s in pod %s: %v", addr, podSandboxID, err)
	}
	defer conn.Close()

	go func() {
		_, _ = io.Copy(conn, stream)
		// The client finished sending: pass the half-close on, the
		// answer may still be on its way.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	podDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, conn)
		close(podDone)
	}()
	// The pod side closing ends the forward; the deferred closes then
	// end the other copy.
	select {
	case <-podDone:
	case <-ctx.Done():
	}
	return nil
}

// pty is a terminal cradle allocates for runc to relay to.
type pty struct {
	main, replica *os.File
}

// openPTY allocates a pty through /dev/ptmx.
func openPTY() (*pty, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	main := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		main.Close()
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("pty number: %w", err)
	}
	replica, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		main.Close()
		return nil, fmt.Errorf("open pty replica: %w", err)
	}
	// Raw, so runc's relay passes bytes through unchanged.
	if t, err := unix.IoctlGetTermios(int(replica.Fd()), unix.TCGETS); err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		_ = unix.IoctlSetTermios(int(replica.Fd()), unix.TCSETS, t)
	}
	return &pty{main: main, replica: replica}, nil
}

func (p *pty) setSize(width, height uint16) error {
	return unix.IoctlSetWinsize(int(p.main.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
}
