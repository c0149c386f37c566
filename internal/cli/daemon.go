package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/daemon"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// configFlags are the flags `cradle daemon` and `cradle config` share.
type configFlags struct {
	file string
	ov   config.Overrides
}

func (f *configFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.file, "config", "", "config file (default "+config.DefaultFile+"; drop-ins from <file without .toml>.d/*.toml)")
	fl.StringVar(&f.ov.Socket, "socket", "", "CRI socket path (overrides the config's socket)")
	fl.StringVar(&f.ov.Root, "root", "", "root directory for persistent data (overrides root)")
	fl.StringVar(&f.ov.State, "state", "", "state directory for runtime state (overrides state)")
	fl.StringVar(&f.ov.LogLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")
}

func (f *configFlags) load() (*config.Loaded, error) { return config.Load(f.file, f.ov) }

// newDaemonCommand returns `cradle daemon`: it stays in the foreground (the
// supervisor owns daemonising) and exits on SIGTERM/SIGINT, leaving containers
// running.
func newDaemonCommand() *cobra.Command {
	var flags configFlags
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the CRI daemon in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := flags.load()
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			// Packages that log through slog's default (sandbox recovery,
			// libraries) then honour log_level and the daemon's format.
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			return daemon.Run(ctx, cfg, log, nil)
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

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
