package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newExecCommand() *cobra.Command {
	var (
		sync             bool
		interactive, tty bool
		timeout          int64
		sf               streamFlags
	)
	cmd := criCommand(&cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container; cradle exits with the command's exit
code. CONTAINER is an ID or a unique ID prefix. Flags go before CONTAINER;
everything after it is the command.

By default the command runs through the CRI's ExecSync: its output is printed
once it has ended. With -i, -t or --sync=false it runs through the CRI's Exec
and the runtime's streaming server instead: output streams as it comes, -i
passes stdin (its end closes the command's stdin), and -t gives the command a
terminal, with the local one in raw mode and resized with the window;
Ctrl-P Ctrl-Q then detaches, leaving the command running.`,
		Example: `  cradle exec 3f2a ls -l /
  cradle exec --timeout 5 3f2a sh -c 'echo $HOSTNAME'
  echo hi | cradle exec -i 3f2a cat
  cradle exec -it 3f2a sh`,
		Args: minArgs(2, "a CONTAINER and a COMMAND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			streaming := interactive || tty || !sync
			if timeout < 0 {
				return errdefs.InvalidArgument("--timeout must not be negative, got %d", timeout)
			}
			if streaming && timeout != 0 {
				return errdefs.InvalidArgument("--timeout only applies to a synchronous exec, not with -i, -t or --sync=false")
			}
			if streaming {
				if err := sf.check(); err != nil {
					return err
				}
				if err := checkSession(clientFor(cmd).env, interactive, tty); err != nil {
					return err
				}
			}
			command := args[1:]
			// `cradle exec ID -- cmd`: flag parsing stopped at ID, so the
			// separator is still there.
			if command[0] == "--" {
				command = command[1:]
			}
			if len(command) == 0 {
				return &usageError{errors.New(`"cradle exec" needs a COMMAND after --`)}
			}
			ctx := cmd.Context()
			c := clientFor(cmd)
			rt, err := c.Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := resolveContainerID(ctx, rt, args[0])
			if err != nil {
				return err
			}
			if streaming {
				return execStream(ctx, c, rt, &sf, &runtimeapi.ExecRequest{
					ContainerId: id, Cmd: command, Tty: tty, Stdin: interactive, Stdout: true, Stderr: !tty,
				})
			}
			stdout, stderr, err := rt.ExecSync(ctx, id, command, time.Duration(timeout)*time.Second)
			// Output comes with a non-zero exit too: print it before judging.
			cmd.OutOrStdout().Write(stdout) //nolint:errcheck // nowhere to report it
			cmd.ErrOrStderr().Write(stderr) //nolint:errcheck
			var exit interface{ ExitStatus() int }
			switch {
			case err == nil:
				return nil
			case errors.As(err, &exit):
				return &exitCodeError{exit.ExitStatus()}
			}
			return fmt.Errorf("exec in container %s: %w", id, rpcError(err))
		},
	})
	fl := cmd.Flags()
	// `cradle exec ID ls -l`: -l belongs to ls.
	fl.SetInterspersed(false)
	fl.BoolVarP(&sync, "sync", "s", true, "run the command with ExecSync and print its output when it ends; --sync=false streams it")
	fl.BoolVarP(&interactive, "interactive", "i", false, "stream stdin to the command (implies streaming)")
	fl.BoolVarP(&tty, "tty", "t", false, "run the command in a terminal; needs -i and a terminal on stdin")
	fl.Int64Var(&timeout, "timeout", 0, "`SECONDS` a synchronous command may run before the runtime kills it (0: no limit)")
	sf.register(fl, true)
	return cmd
}

// execStream runs an exec through the runtime's streaming server.
func execStream(ctx context.Context, c *client, rt internalapi.RuntimeService, sf *streamFlags, req *runtimeapi.ExecRequest) error {
	resp, err := rt.Exec(ctx, req)
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", req.ContainerId, rpcError(err))
	}
	u, err := streamURL(resp.GetUrl())
	if err != nil {
		return err
	}
	c.log.Debug("exec stream", "url", u.Redacted(), "transport", sf.transport)
	ex, err := sf.executor(u)
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", req.ContainerId, err)
	}
	if err := runSession(ctx, c.env, ex, req.Stdin, req.Tty); err != nil {
		var code *exitCodeError
		if errors.As(err, &code) {
			return err
		}
		return fmt.Errorf("exec in container %s: %w", req.ContainerId, err)
	}
	return nil
}
