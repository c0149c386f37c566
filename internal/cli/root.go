// Package cli is the cradle command line. `daemon` and `config` run locally;
// every other verb is a CRI client built on kubelet's own client
// (k8s.io/cri-client), with crictl's flags and output, so it works against
// any CRI runtime. Each verb group lives in its own file and reaches the
// runtime through clientFor(cmd).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// environment is what a run takes from its process, replaceable in tests.
type environment struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// isTerminal reports whether f (stdin or stdout) is an interactive
	// terminal: it decides the pull progress display and password prompts.
	isTerminal func(f any) bool
	// exec replaces the process (`cradle daemon` becomes cradled).
	exec func(argv0 string, argv, envv []string) error
}

func osEnvironment() *environment {
	return &environment{
		getenv: os.Getenv,
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		isTerminal: func(f any) bool {
			file, ok := f.(*os.File)
			return ok && term.IsTerminal(int(file.Fd()))
		},
		exec: syscall.Exec,
	}
}

// Execute runs the cradle command line on os.Args and returns the process
// exit code. SIGINT and SIGTERM cancel the running call; a second one kills
// the process the default way.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return run(ctx, os.Args[1:], osEnvironment())
}

// run executes one command line and returns its exit code: 0 on success,
// 1 on any error, which is printed on stderr.
func run(ctx context.Context, args []string, env *environment) int {
	c := newClient(env)
	defer c.Close()
	root := newRootCommand(c)
	root.SetArgs(args)
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	cmd, err := root.ExecuteContextC(context.WithValue(ctx, clientKey{}, c))
	if err == nil {
		return 0
	}
	var ec *exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = errors.New("interrupted")
	}
	fmt.Fprintf(env.stderr, "Error: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) && cmd != nil {
		fmt.Fprintf(env.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return 1
}

// exitCodeError ends the run with a code of its own and no message: exec
// passes on the exit code of the command it ran, whose stderr the user has
// already seen.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// usageError marks a mistake in the command line itself, so run points the
// user at the verb's help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func newRootCommand(c *client) *cobra.Command {
	root := &cobra.Command{
		Use:   "cradle",
		Short: "cradle: a Kubernetes container runtime and its CRI client",
		Long: `cradle is a Kubernetes container runtime: 'cradle daemon' serves the
Container Runtime Interface (CRI v1) on a unix socket. The other verbs are a
CRI client with crictl's flags and output; they work against any CRI runtime.
Global flags go before the verb:

  cradle -r unix:///run/containerd/containerd.sock images`,
		// Global flags are parsed before the verb, as crictl does it. They
		// cannot be inherited by the verbs because the verbs reuse their
		// short names (exec -i -t, runp -r), exactly as in crictl.
		TraverseChildren:           true,
		SuggestionsMinimumDistance: 2,
		SilenceErrors:              true,
		SilenceUsage:               true,
		// Runnable with an argument check: with TraverseChildren cobra
		// would otherwise answer a mistyped verb with the help and exit 0.
		Args: unknownVerb,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetContext(c.withLogger(cmd.Context(), cmd.ErrOrStderr()))
			return nil
		},
	}
	fl := root.Flags()
	fl.StringVarP(&c.flags.runtimeEndpoint, "runtime-endpoint", "r", "",
		"CRI runtime endpoint (env "+envRuntimeEndpoint+"; default "+defaultEndpoint+")")
	fl.StringVarP(&c.flags.imageEndpoint, "image-endpoint", "i", "",
		"CRI image endpoint (env "+envImageEndpoint+"; default: the runtime endpoint)")
	fl.DurationVarP(&c.flags.timeout, "timeout", "t", defaultTimeout,
		"timeout for connecting and for each call (pulls: see pull --pull-timeout)")
	fl.BoolVarP(&c.flags.debug, "debug", "D", false, "log connections and requests on stderr")

	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if cmd != root && isGlobalFlagError(fl, err) {
			err = fmt.Errorf("%w (global flags go before the verb: cradle [global flags] %s ...)", err, cmd.Name())
		}
		return &usageError{err}
	})
	root.SetUsageTemplate(root.UsageTemplate() + `{{if index .Annotations "criClient"}}
Global flags (before the verb): -r/--runtime-endpoint, -i/--image-endpoint, -t/--timeout, -D/--debug.
See 'cradle --help'.
{{end}}`)

	root.AddCommand(
		newDaemonCommand(c.env),
		newConfigCommand(),
		newCheckCommand(),
		newVersionCommand(),
		newInfoCommand(),
		newPullCommand(),
		newImagesCommand(),
		newInspectImageCommand(),
		newRemoveImageCommand(),
		newImageFsInfoCommand(),
		newRunPodCommand(),
		newPodsCommand(),
		newInspectPodCommand(),
		newStopPodCommand(),
		newRemovePodCommand(),
		newCreateCommand(),
		newStartCommand(),
		newRunCommand(),
		newPsCommand(),
		newInspectCommand(),
		newExecCommand(),
		newAttachCommand(),
		newPortForwardCommand(),
		newLogsCommand(),
		newStopCommand(),
		newRemoveCommand(),
		newStatsCommand(),
		newStatsPodCommand(),
		newEventsCommand(),
	)
	return root
}

// isGlobalFlagError reports whether pflag rejected one of the root's flags
// given after the verb.
func isGlobalFlagError(global *pflag.FlagSet, err error) bool {
	msg := err.Error()
	found := false
	global.VisitAll(func(f *pflag.Flag) {
		if strings.Contains(msg, "--"+f.Name) || (f.Shorthand != "" && strings.Contains(msg, "'"+f.Shorthand+"'")) {
			found = true
		}
	})
	return found
}

func unknownVerb(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, " or ") + "?)"
	}
	return &usageError{errors.New(msg)}
}

// criCommand marks cmd as a CRI client verb: its help names the global flags.
func criCommand(cmd *cobra.Command) *cobra.Command {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations["criClient"] = "true"
	return cmd
}

// Argument validators that report usage errors.

func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Errorf("%q needs %s, got %d argument(s)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}

func minArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return &usageError{fmt.Errorf("%q needs %s", cmd.CommandPath(), names)}
		}
		return nil
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return &usageError{fmt.Errorf("%q takes at most %d argument(s), got %d", cmd.CommandPath(), n, len(args))}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error { return maxArgs(0)(cmd, args) }
