package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
)

func newExecCommand() *cobra.Command {
	var (
		sync             bool
		interactive, tty bool
		timeout          int64
	)
	cmd := criCommand(&cobra.Command{
		Use:   "exec [flags] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container and wait for it (the CRI's ExecSync):
its output goes to stdout and stderr once it has ended, and cradle exits with
the command's exit code. CONTAINER is an ID or a unique ID prefix. Flags go
before CONTAINER; everything after it is the command.`,
		Example: `  cradle exec 3f2a ls -l /
  cradle exec --timeout 5 3f2a sh -c 'echo $HOSTNAME'`,
		Args: minArgs(2, "a CONTAINER and a COMMAND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Streaming exec (stdin, a terminal) needs the CRI streaming
			// server's protocol; it is not built yet.
			if !sync || interactive || tty {
				return errdefs.New(errdefs.ErrUnimplemented, "interactive exec (-i, -t, --sync=false) is not supported yet; run the command without them")
			}
			if timeout < 0 {
				return errdefs.InvalidArgument("--timeout must not be negative, got %d", timeout)
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := resolveContainerID(ctx, rt, args[0])
			if err != nil {
				return err
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
	fl.BoolVarP(&sync, "sync", "s", true, "run the command synchronously (ExecSync); the only mode so far")
	fl.BoolVarP(&interactive, "interactive", "i", false, "keep stdin open (not supported yet)")
	fl.BoolVarP(&tty, "tty", "t", false, "allocate a terminal (not supported yet)")
	fl.Int64Var(&timeout, "timeout", 0, "`SECONDS` the command may run before the runtime kills it (0: no limit)")
	return cmd
}
