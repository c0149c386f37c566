package oci

// The relay. A sandboxed runtime (gVisor's runsc; Kata's runtime CLI works
// alike) runs a whole pod in one sandbox process, made by the pod's sandbox
// container. A container that joins it is created by `create`, but its
// process is handed its stdin/stdout/stderr by `start`: the sandbox already
// runs, so the start command's own stdio is what it passes in. conmon runs
// only `create`, so the container would write its output to whoever ran
// `start`, never to conmon's log. Its process is also no child of conmon
// (runsc reports the sandbox's pid), so conmon could not learn its exit.
//
// So conmon runs this relay (the daemon's own binary, verb RelayVerb) in
// the runtime's place:
//
//   - as `create` it runs the runtime's create, then starts the holder with
//     conmon's stdio and the start FIFO, writes the holder's pid into the
//     pid file (conmon's "container process") and exits;
//   - the holder waits on the start FIFO; "start" runs the runtime's start
//     with conmon's stdio and answers on the result FIFO, after which it
//     lets go of that stdio and runs the runtime's `wait`, exiting with the
//     container's exit status, which conmon records as for any container;
//     "quit" (Delete of a container never started) ends it.
//
// Everything lives in the container's state dir, so a daemon restarted
// between create and start still starts it. Nothing here knows runsc.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// RelayVerb is the first argument that makes the daemon binary (cradled) the relay
// (cmd/cradled hands over to RelayMain before anything else runs).
const RelayVerb = "oci-relay"

const (
	relayStartFIFO  = "relay-start"
	relayResultFIFO = "relay-result"
	relayHoldVerb   = "hold"
	relayQuit       = "quit"
	relayStart      = "start"
)

// relayExitUnknown is the holder's exit status when the runtime could not
// say how the container ended (its sandbox died).
const relayExitUnknown = 255

// relayed says whether a container created from bundle runs through the
// relay: on a sandboxed runtime, every container but the pod's sandbox.
func (r *Runtime) relayed(bundle string) bool {
	if !r.cfg.Sandboxed {
		return false
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return false
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &s) != nil {
		return false
	}
	return s.Annotations[annotationContainerType] != containerTypeSandbox
}

// The annotation runsc and Kata read to tell a pod's sandbox from the
// containers that join it (containerd's; CRI-O's twin says the same).
const (
	annotationContainerType = "io.kubernetes.cri.container-type"
	containerTypeSandbox    = "sandbox"
)

// conmonRuntime is conmon's -r and --runtime-arg list for o.
func (r *Runtime) conmonRuntime(o CreateOpts) []string {
	if !o.relay {
		args := []string{"-r", r.cfg.RuntimePath}
		for _, a := range r.globalArgsEq() {
			args = append(args, "--runtime-arg", a)
		}
		return args
	}
	// conmon puts its own --systemd-cgroup right after -r, where the relay
	// expects its verb: the relay passes the runtime's globals itself.
	globals := r.globalArgsEq()
	if r.cfg.SystemdCgroup {
		globals = append(globals, "--systemd-cgroup")
	}
	args := []string{"-r", r.cfg.RelayPath}
	for _, a := range append([]string{RelayVerb, "--runtime=" + r.cfg.RuntimePath, "--dir=" + r.ctrDir(o.ID),
		"--globals=" + strconv.Itoa(len(globals)), "--"}, globals...) {
		args = append(args, "--runtime-arg", a)
	}
	return args
}

// globalArgsEq is globalArgs with --root joined to its value, as conmon
// passes each --runtime-arg as one word; without --systemd-cgroup, which
// conmon adds itself.
func (r *Runtime) globalArgsEq() []string {
	return append([]string{"--root=" + r.cfg.RuntimeRoot}, r.cfg.RuntimeArgs...)
}

// startRelayed asks the holder of a relayed container to start it and
// waits for its answer.
func (r *Runtime) startRelayed(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, r.callTimeout())
	defer cancel()
	dir := r.ctrDir(id)
	// O_RDWR: we are a writer too, so reads wait for the holder's answer
	// instead of seeing EOF before it opened its end.
	res, err := os.OpenFile(filepath.Join(dir, relayResultFIFO), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("start container %s: relay: %w", id, err)
	}
	defer res.Close()
	if err := relaySend(dir, relayStart); err != nil {
		return errdefs.FailedPrecondition("start container %s: its relay is gone (%v): the container can only be removed", id, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = res.SetReadDeadline(dl)
	}
	line, err := bufio.NewReader(res).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return errdefs.WithKind(errdefs.ErrDeadlineExceeded, fmt.Errorf("%s start %s: no answer from its relay", r.cfg.Handler, id))
		}
		return fmt.Errorf("start container %s: relay: %w", id, err)
	}
	line = strings.TrimSpace(line)
	if msg, failed := strings.CutPrefix(line, "error: "); failed {
		return errdefs.WithKind(classify(msg), fmt.Errorf("%s start %s: %s", r.cfg.Handler, id, msg))
	}
	return nil
}

// relaySend writes one command to the holder; ENXIO means no holder reads.
func relaySend(dir, cmd string) error {
	f, err := os.OpenFile(filepath.Join(dir, relayStartFIFO), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte(cmd + "\n"))
	return err
}

// quitRelay ends the holder of a container that is being deleted, if it
// still waits for a start.
func (r *Runtime) quitRelay(id string) {
	_ = relaySend(r.ctrDir(id), relayQuit)
}

// relayArgs is the relay's command line after the verb.
type relayArgs struct {
	runtime string
	dir     string
	globals []string
	rest    []string // the runtime's subcommand and its arguments
}

func parseRelayArgs(args []string) (relayArgs, error) {
	var a relayArgs
	n := -1
	for i, arg := range args {
		switch {
		case arg == "--":
			rest := args[i+1:]
			if n < 0 || n > len(rest) {
				return a, fmt.Errorf("relay: --globals missing or too large")
			}
			a.globals, a.rest = rest[:n], rest[n:]
			if a.runtime == "" || a.dir == "" || len(a.rest) == 0 {
				return a, fmt.Errorf("relay: --runtime, --dir and a subcommand are required")
			}
			return a, nil
		case strings.HasPrefix(arg, "--runtime="):
			a.runtime = strings.TrimPrefix(arg, "--runtime=")
		case strings.HasPrefix(arg, "--dir="):
			a.dir = strings.TrimPrefix(arg, "--dir=")
		case strings.HasPrefix(arg, "--globals="):
			v, err := strconv.Atoi(strings.TrimPrefix(arg, "--globals="))
			if err != nil || v < 0 {
				return a, fmt.Errorf("relay: bad %s", arg)
			}
			n = v
		default:
			return a, fmt.Errorf("relay: unknown argument %q", arg)
		}
	}
	return a, fmt.Errorf("relay: no -- before the runtime's arguments")
}

// RelayMain runs the relay with the arguments after RelayVerb and returns
// its exit status.
func RelayMain(args []string) int {
	hold := len(args) > 0 && args[0] == relayHoldVerb
	if hold {
		args = args[1:]
	}
	a, err := parseRelayArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if hold {
		return a.hold()
	}
	return a.create()
}

// create runs the runtime's create, then leaves the holder behind.
func (a relayArgs) create() int {
	if a.rest[0] != "create" {
		fmt.Fprintf(os.Stderr, "relay: only create is relayed, got %q\n", a.rest[0])
		return 2
	}
	pidFile := ""
	for i, arg := range a.rest {
		if arg == "--pid-file" && i+1 < len(a.rest) {
			pidFile = a.rest[i+1]
		}
	}
	id := a.rest[len(a.rest)-1]
	if pidFile == "" {
		fmt.Fprintln(os.Stderr, "relay: create without --pid-file")
		return 2
	}
	for _, name := range []string{relayStartFIFO, relayResultFIFO} {
		p := filepath.Join(a.dir, name)
		_ = os.Remove(p)
		if err := unix.Mkfifo(p, 0o600); err != nil {
			fmt.Fprintf(os.Stderr, "relay: %s: %v\n", p, err)
			return 1
		}
	}
	if code := a.runtimeCmd(a.rest...).run(); code != 0 {
		return code
	}
	// Opened before the pid file names the holder, so a start sent as soon
	// as conmon reports the pid always finds a reader.
	start, err := os.OpenFile(filepath.Join(a.dir, relayStartFIFO), os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	holdArgs := []string{RelayVerb, relayHoldVerb, "--runtime=" + a.runtime, "--dir=" + a.dir,
		"--globals=" + strconv.Itoa(len(a.globals)), "--"}
	holdArgs = append(append(holdArgs, a.globals...), id)
	cmd := exec.Command(self, holdArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{start}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "relay: start holder: %v\n", err)
		return 1
	}
	// conmon watches the holder as the container's process; as a subreaper
	// it inherits it when we exit.
	if err := writeFileAtomic(pidFile, []byte(strconv.Itoa(cmd.Process.Pid))); err != nil {
		_ = cmd.Process.Kill()
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
	return 0
}

// hold waits for start (or quit) on fd 3, then for the container's exit.
func (a relayArgs) hold() int {
	id := a.rest[len(a.rest)-1]
	// What the runtime's start leaves behind (gVisor's gofer) becomes ours,
	// not conmon's, which may be gone by the time it exits: then it would
	// be a zombie of the daemon, and the runtime's delete waits for it.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	cmds := bufio.NewScanner(os.NewFile(3, relayStartFIFO))
	for cmds.Scan() {
		switch cmds.Text() {
		case relayQuit:
			return relayExitUnknown
		case relayStart:
		default:
			continue
		}
		// The runtime's own errors go to a --log file (as for exec): its
		// stderr is the container's.
		logPath := filepath.Join(a.dir, "relay-start.log")
		_ = os.Remove(logPath)
		code := a.runtimeCmd("--log="+logPath, "--log-format=json", "start", id).run()
		if code != 0 {
			msg := runtimeLogError(logPath)
			if msg == "" {
				msg = fmt.Sprintf("exit status %d", code)
			}
			a.answer("error: " + strings.ReplaceAll(msg, "\n", " "))
			continue // the container is still created: a retry may work
		}
		a.answer("ok")
		// The sandbox has its own copies now: ours would keep conmon's
		// pipes open after the container ends.
		releaseStdio()
		code = a.wait(id)
		// What start left behind (gVisor's gofer) serves only this
		// container, which has ended: it goes with the holder, before
		// conmon (which may exit first) could hand it to the daemon.
		killChildren()
		reapChildren(orphanGrace)
		return code
	}
	return relayExitUnknown
}

func (a relayArgs) answer(line string) {
	f, err := os.OpenFile(filepath.Join(a.dir, relayResultFIFO), os.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return // nobody waits (the daemon went away); it will see the state
	}
	defer f.Close()
	_, _ = f.Write([]byte(line + "\n"))
}

// wait returns the container's exit status as the runtime reports it.
func (a relayArgs) wait(id string) int {
	for attempt := 0; ; attempt++ {
		var out strings.Builder
		cmd := exec.Command(a.runtime, append(append([]string{}, a.globals...), "wait", id)...)
		cmd.Stdout = &out
		err := cmd.Run()
		var res struct {
			ExitStatus *int `json:"exitStatus"`
		}
		if err == nil && json.Unmarshal([]byte(out.String()), &res) == nil && res.ExitStatus != nil {
			if c := *res.ExitStatus; c >= 0 && c <= 255 {
				return c
			}
			return relayExitUnknown
		}
		// A wait that fails at once (the sandbox was busy) is retried a
		// few times; a gone sandbox leaves the status unknown.
		if attempt == 2 {
			return relayExitUnknown
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// orphanGrace bounds how long the holder waits for what the runtime left
// behind to die after the container ended.
const orphanGrace = 2 * time.Second

// killChildren SIGKILLs the holder's children: by then only what the
// runtime left behind (re-parented to the holder, a subreaper).
func killChildren() {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.ppid == self {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// reapChildren waits for the holder's remaining children (no command of
// its own runs any more), up to grace.
func reapChildren(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ws unix.WaitStatus
			if _, err := unix.Wait4(-1, &ws, 0, nil); err != nil && err != unix.EINTR {
				return // ECHILD: none left
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(grace):
	}
}

func releaseStdio() {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := 0; fd <= 2; fd++ {
		_ = unix.Dup3(int(null.Fd()), fd, 0)
	}
	null.Close()
}

type relayCmd struct {
	cmd *exec.Cmd
}

func (a relayArgs) runtimeCmd(args ...string) relayCmd {
	cmd := exec.Command(a.runtime, append(append([]string{}, a.globals...), args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return relayCmd{cmd}
}

func (c relayCmd) run() int {
	err := c.cmd.Run()
	for _, f := range c.cmd.ExtraFiles {
		f.Close()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		return 1
	}
}
