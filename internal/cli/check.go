package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cradle-runtime/cradle/internal/check"
)

// Exit codes of `cradle check`, for scripts: 0 clean, 1 inconsistent.
const exitCheckFailed = 2

// newCheckCommand returns `cradle check`: the offline consistency check of
// a root and state dir (internal/check). It runs locally, like daemon.
func newCheckCommand() *cobra.Command {
	var flags configFlags
	var repair bool
	var output string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check root and state for leftovers of a crash (offline; --repair fixes what is safe)",
		Long: `check compares the records under root with what the disk and the kernel
hold: state dirs, mounts, namespace pins, runtime containers, conmon and
other processes, cgroups, CNI attachments and host-local IP leases. It
prints one line per problem with what --repair does about it, then a
summary line. It refuses to run while a daemon holds root or state.

--repair removes orphans, releases leaked IPs, unmounts stale mounts and
sets unreadable records aside (<name>.corrupt), then checks again. It never
removes what a readable record names.

Exit status: 0 clean (after --repair: nothing left), 1 problems found (or
left), 2 the check could not run (usage, configuration, a running daemon).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return checkError(cmd, &usageError{fmt.Errorf("%q takes no arguments", cmd.CommandPath())})
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return checkError(cmd, &usageError{fmt.Errorf("--output %q: want text or json", output)})
			}
			loaded, err := flags.load()
			if err != nil {
				return checkError(cmd, err)
			}
			cfg, err := check.FromConfig(loaded)
			if err != nil {
				return checkError(cmd, err)
			}
			rep, err := check.Run(cmd.Context(), cfg, check.Options{Repair: repair})
			if err != nil {
				return checkError(cmd, err)
			}
			if output == "json" {
				err = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				err = rep.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return checkError(cmd, err)
			}
			if !rep.Clean() {
				return &exitCodeError{1}
			}
			return nil
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&repair, "repair", false, "fix what is safe to fix, then check again")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return checkError(cmd, &usageError{err}) })
	return cmd
}

// checkError prints err and ends the run with exit status 2, which tells a
// check that could not run from one that found problems.
func checkError(cmd *cobra.Command, err error) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "Error: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return &exitCodeError{exitCheckFailed}
}
