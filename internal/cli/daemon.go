package cli

import (
	goflag "flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/daemonexec"
	"github.com/spf13/cobra"
)

// configFlags are the flags `cradle daemon`, `cradle config` and `cradle
// check` share; config.Flags defines them for both binaries.
type configFlags struct{ config.Flags }

func (f *configFlags) register(cmd *cobra.Command) {
	gfs := goflag.NewFlagSet(cmd.Name(), goflag.ContinueOnError)
	f.Register(gfs)
	cmd.Flags().AddGoFlagSet(gfs)
}

func (f *configFlags) load() (*config.Loaded, error) { return f.Load() }

// DaemonBinary is the lean daemon `cradle daemon` runs (cmd/cradled). The
// daemon is a binary of its own so that it does not carry this client's
// dependencies (client-go's streaming, cri-client, cobra's templates) in
// its memory: an idle daemon's pages are mostly the code it maps.
const DaemonBinary = daemonexec.Binary

// daemonPath finds cradled beside this binary (how they are built and
// installed), else on PATH.
func daemonPath() (string, error) {
	var tried []string
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), DaemonBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath(DaemonBinary); err == nil {
		return p, nil
	}
	tried = append(tried, "PATH")
	return "", fmt.Errorf("cradle daemon runs %s, which is in none of %s: build it beside cradle (go build -o bin/ ./cmd/cradle ./cmd/cradled)",
		DaemonBinary, strings.Join(tried, ", "))
}

// newDaemonCommand returns `cradle daemon`: it replaces this process with
// cradled (internal/daemonexec does it earlier, before the CLI's packages
// initialise, when cradled is beside this binary and the verb comes first) (same pid, so supervisors, signals and scripts see no difference),
// which stays in the foreground and exits on SIGTERM/SIGINT, leaving
// containers running.
func newDaemonCommand(env *environment) *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the CRI daemon in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := daemonPath()
			if err != nil {
				return err
			}
			return env.exec(bin, append([]string{bin}, flags.Args()...), os.Environ())
		},
	}
	flags.register(cmd)
	return cmd
}

// newConfigCommand returns `cradle config`: the configuration in force.
// When a daemon answers on the configured socket, that is the daemon's own
// (its start-up configuration with every reload applied, from Status's
// verbose info), and the command says which keys the files would change;
// otherwise it is what the files, drop-ins and flags give.
func newConfigCommand() *cobra.Command {
	var flags configFlags
	var defaults, filesOnly bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the configuration in force (the running daemon's, else the files' merged with the flags)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if defaults {
				out, err := config.CommentedDefaults()
				if err != nil {
					return err
				}
				_, err = w.Write(out)
				return err
			}
			cfg, loadErr := flags.load()
			socket := config.DefaultSocket
			if cfg != nil {
				socket = cfg.Socket
			} else if flags.Socket != "" {
				socket = flags.Socket
			}
			if !filesOnly {
				if running, files, err := daemonConfig(cmd.Context(), socket); err == nil {
					return printRunningConfig(w, socket, running, files, cfg, loadErr)
				}
			}
			if loadErr != nil {
				return loadErr
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			if len(cfg.Files) == 0 {
				fmt.Fprintln(w, "# no config file found: built-in defaults")
			} else {
				fmt.Fprintf(w, "# read: %s\n", strings.Join(cfg.Files, ", "))
			}
			_, err = w.Write(out)
			return err
		},
	}
	flags.register(cmd)
	cmd.Flags().BoolVar(&defaults, "default", false, "print the built-in defaults as a commented config file (the packaged /etc/cradle/cradle.toml)")
	cmd.Flags().BoolVar(&filesOnly, "files", false, "print what the files and flags give, without asking a running daemon")
	return cmd
}
