package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// criAPIVersion is the CRI version the client asks for.
const criAPIVersion = "v1"

func newVersionCommand() *cobra.Command {
	return criCommand(&cobra.Command{
		Use:   "version",
		Short: "Display runtime version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			v, err := rt.Version(ctx, criAPIVersion)
			if err != nil {
				return fmt.Errorf("get the runtime version: %w", rpcError(err))
			}
			// crictl's exact layout (two spaces after each colon), which
			// scripts grep.
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, "Version: ", v.Version)
			fmt.Fprintln(w, "RuntimeName: ", v.RuntimeName)
			fmt.Fprintln(w, "RuntimeVersion: ", v.RuntimeVersion)
			fmt.Fprintln(w, "RuntimeApiVersion: ", v.RuntimeApiVersion)
			return nil
		},
	})
}
