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

// newConfigCommand returns `cradle config`: the effective configuration as TOML.
func newConfigCommand() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (defaults, files, drop-ins and flags merged)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load()
			if err != nil {
				return err
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
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
	return cmd
}
