package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newAttachCommand() *cobra.Command {
	var (
		stdin, tty bool
		sf         streamFlags
	)
	cmd := criCommand(&cobra.Command{
		Use:   "attach [flags] CONTAINER",
		Short: "Attach to the stdio of a running container",
		Long: `Attach to a running container's main process through the CRI's Attach and
the runtime's streaming server: its output streams to stdout and stderr from
now on (earlier output is in 'cradle logs'), and with -i stdin goes to the
process. -t is for containers created with a terminal; it needs -i and a
terminal on stdin. The session ends when the process exits or on Ctrl-C; with
-t the process gets Ctrl-C, and Ctrl-P Ctrl-Q detaches, leaving it running.
CONTAINER is an ID or a unique ID prefix.`,
		Example: `  cradle attach 3f2a
  cradle attach -it 3f2a`,
		Args: exactArgs(1, "a CONTAINER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(); err != nil {
				return err
			}
			c := clientFor(cmd)
			if err := checkSession(c.env, stdin, tty); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := c.Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := resolveContainerID(ctx, rt, args[0])
			if err != nil {
				return err
			}
			resp, err := rt.Attach(ctx, &runtimeapi.AttachRequest{
				ContainerId: id, Stdin: stdin, Tty: tty, Stdout: true, Stderr: !tty,
			})
			if err != nil {
				return fmt.Errorf("attach to container %s: %w", id, rpcError(err))
			}
			u, err := streamURL(resp.GetUrl())
			if err != nil {
				return err
			}
			c.log.Debug("attach stream", "url", u.Redacted(), "transport", sf.transport)
			ex, err := sf.executor(u)
			if err != nil {
				return fmt.Errorf("attach to container %s: %w", id, err)
			}
			err = runSession(ctx, c.env, ex, stdin, tty)
			var code *exitCodeError
			if err == nil || errors.As(err, &code) {
				return err
			}
			return fmt.Errorf("attach to container %s: %w", id, err)
		},
	})
	fl := cmd.Flags()
	fl.BoolVarP(&stdin, "stdin", "i", false, "pass stdin to the container")
	fl.BoolVarP(&tty, "tty", "t", false, "the container has a terminal: attach to it (needs -i and a terminal on stdin)")
	sf.register(fl, true)
	return cmd
}
