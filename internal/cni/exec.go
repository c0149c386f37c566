package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/cradle-runtime/cradle/internal/proctree"
)

const (
	// outputGrace is how long a finished or killed plugin's pipes may stay
	// open (held by a child it forked) before they are closed on it.
	outputGrace = 2 * time.Second
	// maxDiag caps plugin stderr/stdout quoted in an error message.
	maxDiag = 4 << 10
	// maxOutput caps a plugin's stdout; results are a few KiB.
	maxOutput = 1 << 20
)

// pluginExec runs plugin binaries for libcni. It differs from libcni's
// default in what happens when ctx ends: each plugin runs in its own process
// group, the whole group is killed, and its output pipes are closed after
// outputGrace. With the default only the plugin process is killed, and a child
// it forked (a shell script's sleep, an iptables call) keeps stdout open, so
// the call outlives its deadline until that child exits.
type pluginExec struct {
	version.PluginDecoder
}

var _ invoke.Exec = &pluginExec{}

func (*pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (*pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		out, err := runPlugin(ctx, pluginPath, stdin, environ)
		// ETXTBSY: the binary is being replaced (a CNI daemonset copying
		// plugins in); a moment later it runs.
		if !errors.Is(err, syscall.ETXTBSY) || attempt == 5 {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

func runPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	stdout := &capped{max: maxOutput}
	stderr := &capped{max: maxDiag}
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The group and every descendant, reaping what is orphaned to the
	// daemon (a child subreaper): no plugin child left running or a zombie.
	cmd.Cancel = func() error { return proctree.Kill(cmd.Process) }
	cmd.WaitDelay = outputGrace

	err := cmd.Run()
	if stdout.over {
		return nil, &types.Error{Code: types.ErrInternal, Msg: fmt.Sprintf("plugin wrote more than %d bytes to stdout", maxOutput)}
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The plugin succeeded; only a straggling child held its output.
		return stdout.Bytes(), nil
	}
	if cmd.ProcessState == nil {
		return nil, err // it never started (ETXTBSY, EACCES, ENOEXEC)
	}
	return nil, pluginFailure(err, stdout.Bytes(), stderr.Bytes())
}

// pluginFailure builds the CNI error a failed plugin reported on stdout, or
// one carrying what it wrote to stderr.
func pluginFailure(runErr error, stdout, stderr []byte) *types.Error {
	if len(bytes.TrimSpace(stdout)) > 0 {
		var e types.Error
		if json.Unmarshal(stdout, &e) == nil && (e.Msg != "" || e.Code != 0) {
			if e.Msg == "" {
				e.Msg = fmt.Sprintf("failed with CNI error code %d", e.Code)
			}
			return &e
		}
		return &types.Error{Msg: fmt.Sprintf("%v, and its output is not a CNI error: %q", runErr, clip(stdout))}
	}
	if s := bytes.TrimSpace(stderr); len(s) > 0 {
		return &types.Error{Msg: fmt.Sprintf("%v: %s", runErr, clip(s))}
	}
	return &types.Error{Msg: fmt.Sprintf("%v, with no error message", runErr)}
}

func clip(b []byte) string {
	if len(b) > maxDiag {
		return string(b[:maxDiag]) + "…"
	}
	return string(b)
}

// capped keeps the first max bytes written and discards the rest, so a
// plugin flooding its output cannot grow the daemon's memory.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if len(p) > room {
		c.over = true
	}
	if room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte { return c.buf.Bytes() }
