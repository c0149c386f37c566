package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newStreamFake(t *testing.T) (*fakeCRI, string) {
	f, ep := newRuntimeFake(t)
	f.withStreaming(t)
	return f, ep
}

// withStdin returns a test environment reading stdin from s.
func withStdin(s string) *environment {
	env, _, _ := testEnv()
	env.stdin = strings.NewReader(s)
	return env
}

func TestExecStreamsStdinOutputAndExitCode(t *testing.T) {
	t.Parallel()
	f, ep := newStreamFake(t)

	r := runCLIEnv(t, withStdin("hi\nthere\n"), ep, "exec", "-i", "c1a", "cat")
	mustSucceed(t, r)
	if r.stdout != "hi\nthere\n" {
		t.Errorf("stdout %q, want stdin echoed", r.stdout)
	}
	want := &runtimeapi.ExecRequest{ContainerId: ctrA, Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true}
	if ex := requests(f, &f.st.execReqs); len(ex) != 1 || !proto.Equal(ex[0], want) {
		t.Errorf("exec requests %v, want %v", ex, want)
	}
	if n := len(requests(f, &f.rt.execs)); n != 0 {
		t.Errorf("streaming exec also called ExecSync %d times", n)
	}

	// The exit code becomes cradle's, stderr stays apart, no message added.
	r = runCLIEnv(t, withStdin(""), ep, "exec", "-i", ctrA, "exit", "3")
	if r.code != 3 || r.stderr != "bye\n" || r.stdout != "" {
		t.Errorf("exit 3: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	// --sync=false streams without stdin; -- still separates the command.
	r = runCLI(t, ep, "exec", "--sync=false", ctrA, "--", "echo", "-n", "x")
	mustSucceed(t, r)
	if r.stdout != "-n x\n" {
		t.Errorf("--sync=false stdout %q", r.stdout)
	}
	if ex := requests(f, &f.st.execReqs); ex[len(ex)-1].Stdin {
		t.Errorf("exec without -i asked for stdin")
	}

	// The WebSocket transport reaches the same server.
	r = runCLI(t, ep, "exec", "--sync=false", "--transport", "websocket", ctrA, "echo", "over", "ws")
	mustSucceed(t, r)
	if r.stdout != "over ws\n" {
		t.Errorf("websocket stdout %q", r.stdout)
	}
	r = runCLI(t, ep, "exec", "--sync=false", "-r", "websocket", ctrA, "exit", "7")
	if r.code != 7 {
		t.Errorf("websocket exit code %d, want 7 (stderr %q)", r.code, r.stderr)
	}
}

func TestStreamingVerbsRefuseBadInputBeforeAnyCall(t *testing.T) {
	t.Parallel()
	f, ep := newStreamFake(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-t", ctrA, "sh"}, "-t needs -i"},
		{[]string{"exec", "-it", ctrA, "sh"}, "stdin is not a terminal"},
		{[]string{"exec", "-i", "--transport", "carrier-pigeon", ctrA, "cat"}, `--transport "carrier-pigeon"`},
		{[]string{"exec", "-i", "--timeout", "3", ctrA, "cat"}, "--timeout only applies to a synchronous exec"},
		{[]string{"exec", "-i", "--tls-cert", "/c.pem", ctrA, "cat"}, "--tls-cert and --tls-key go together"},
		{[]string{"attach", "-t", ctrA}, "-t needs -i"},
		{[]string{"attach", "-it", ctrA}, "stdin is not a terminal"},
		{[]string{"attach", "--transport", "x", ctrA}, `--transport "x"`},
		{[]string{"attach"}, "needs a CONTAINER"},
		{[]string{"port-forward", podA}, "at least one [LOCAL_PORT:]REMOTE_PORT"},
		{[]string{"port-forward", podA, "0"}, "remote port must be 1-65535"},
		{[]string{"port-forward", podA, "70000"}, "remote port must be 1-65535"},
		{[]string{"port-forward", podA, "8080:"}, "remote port must be 1-65535"},
		{[]string{"port-forward", podA, "http"}, "remote port must be 1-65535"},
		{[]string{"port-forward", podA, "x:80"}, "local port must be 0-65535"},
		{[]string{"port-forward", podA, "65536:80"}, "local port must be 0-65535"},
		{[]string{"port-forward", "--address", "example.com", podA, "80"}, "want an IP address or localhost"},
		{[]string{"port-forward", "--transport", "smoke", podA, "80"}, `--transport "smoke"`},
		{[]string{"port-forward", "-r", "websocket", podA, "80"}, "port-forward only speaks spdy"},
	} {
		r := runCLI(t, ep, tc.args...)
		mustFail(t, r, tc.want)
	}
	if n := len(requests(f, &f.listContainers)) + len(requests(f, &f.rt.listPods)); n != 0 {
		t.Errorf("bad command lines made %d list calls", n)
	}
	if n := len(requests(f, &f.st.execReqs)) + len(requests(f, &f.st.attachReqs)) + len(requests(f, &f.st.forwardReqs)); n != 0 {
		t.Errorf("bad command lines made %d streaming calls", n)
	}
}

func TestStreamingVerbsReportRuntimeErrors(t *testing.T) {
	t.Parallel()
	_, ep := newStreamFake(t)
	mustFail(t, runCLI(t, ep, "exec", "-i", "nope", "cat"), `no such container "nope"`)
	mustFail(t, runCLI(t, ep, "attach", "nope"), `no such container "nope"`)
	mustFail(t, runCLI(t, ep, "port-forward", "nope", "80"), `no such pod sandbox "nope"`)
	// The streaming server's own failure (here: an unknown command) is an
	// error, not an exit code.
	r := runCLI(t, ep, "exec", "--sync=false", ctrA, "frobnicate")
	mustFail(t, r, "exec in container "+ctrA+": ")

	// A runtime without a streaming server.
	_, plain := newRuntimeFake(t)
	mustFail(t, runCLI(t, plain, "exec", "-i", ctrA, "cat"), "exec in container "+ctrA+": no streaming server")
}

func TestAttachStreamsBothWays(t *testing.T) {
	t.Parallel()
	f, ep := newStreamFake(t)
	r := runCLIEnv(t, withStdin("typed\n"), ep, "attach", "-i", "c1a")
	mustSucceed(t, r)
	if r.stdout != "attached\ntyped\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	want := &runtimeapi.AttachRequest{ContainerId: ctrA, Stdin: true, Stdout: true, Stderr: true}
	if a := requests(f, &f.st.attachReqs); len(a) != 1 || !proto.Equal(a[0], want) {
		t.Errorf("attach requests %v, want %v", a, want)
	}
	r = runCLI(t, ep, "attach", ctrA)
	mustSucceed(t, r)
	if r.stdout != "attached\n" {
		t.Errorf("attach without -i: stdout %q", r.stdout)
	}
}

// openPTY allocates a pseudo-terminal pair with /dev/ptmx.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func setWinsize(t *testing.T, f *os.File, cols, rows uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows}); err != nil {
		t.Fatal(err)
	}
}

// TestExecTTYRawModeAndResize runs exec -it on a pseudo-terminal: the
// remote side learns the size, a SIGWINCH sends the new one, the exit code
// comes through and the terminal leaves raw mode afterwards. Not parallel:
// it signals the test process.
func TestExecTTYRawModeAndResize(t *testing.T) {
	f, ep := newStreamFake(t)
	_, slave := openPTY(t)
	setWinsize(t, slave, 100, 30)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

	env, out, _ := testEnv()
	env.stdin = slave
	env.isTerminal = func(v any) bool {
		file, ok := v.(*os.File)
		return ok && term.IsTerminal(int(file.Fd()))
	}
	done := make(chan result, 1)
	go func() { done <- runCLIEnv(t, env, ep, "exec", "-it", ctrA, "size") }()

	waitUntil(t, "the first size", func() bool { return strings.Contains(out.String(), "size 100x30") })
	now, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if now.Lflag&(unix.ICANON|unix.ECHO) != 0 {
		t.Errorf("terminal not in raw mode during the session: lflag %#x", now.Lflag)
	}
	setWinsize(t, slave, 120, 40)
	// Signal until the resize arrives: the first may come before the
	// session listens.
	waitUntil(t, "the resize", func() bool {
		_ = syscall.Kill(os.Getpid(), syscall.SIGWINCH)
		return strings.Contains(out.String(), "size 120x40")
	})
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("exec -it did not end")
	}
	if r.code != 5 {
		t.Errorf("exit code %d, want 5 (stderr %q)", r.code, r.stderr)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal not restored: lflag %#x → %#x", before.Lflag, after.Lflag)
	}
	want := &runtimeapi.ExecRequest{ContainerId: ctrA, Cmd: []string{"size"}, Tty: true, Stdin: true, Stdout: true}
	if ex := requests(f, &f.st.execReqs); len(ex) != 1 || !proto.Equal(ex[0], want) {
		t.Errorf("exec requests %v, want %v", ex, want)
	}
}

// waitUntil polls cond until it holds or 20 s have passed.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startCLI runs a command line in the background until stop, which cancels
// it like Ctrl-C and returns what it printed and its exit code.
func startCLI(t *testing.T, env *environment, endpoint string, args ...string) (stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"-r", endpoint}, args...), env) }()
	t.Cleanup(cancel)
	return func() result {
		t.Helper()
		cancel()
		select {
		case code := <-done:
			return result{stdout: env.stdout.(*syncBuffer).String(), stderr: env.stderr.(*syncBuffer).String(), code: code}
		case <-time.After(20 * time.Second):
			t.Fatalf("cradle %s did not stop", strings.Join(args, " "))
			return result{}
		}
	}
}

// TestExecTTYDetach: Ctrl-P Ctrl-Q ends the session with success and the
// keys never reach the remote process.
func TestExecTTYDetach(t *testing.T) {
	t.Parallel()
	_, ep := newStreamFake(t)
	master, slave := openPTY(t)
	env, out, errOut := testEnv()
	env.stdin = slave
	env.isTerminal = func(v any) bool {
		file, ok := v.(*os.File)
		return ok && term.IsTerminal(int(file.Fd()))
	}
	done := make(chan result, 1)
	go func() { done <- runCLIEnv(t, env, ep, "exec", "-it", ctrA, "cat") }()
	// Raw mode first: a cooked terminal would hold the line and eat ^Q.
	waitUntil(t, "raw mode", func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ICANON == 0
	})
	if _, err := master.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the typed text to come back", func() bool { return out.String() == "abc" })
	if _, err := master.Write(detachKeys); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != 0 || r.stdout != "abc" || errOut.String() != "detached\n" {
			t.Errorf("after detaching: exit %d stdout %q stderr %q", r.code, r.stdout, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-P Ctrl-Q did not end the session")
	}
}
