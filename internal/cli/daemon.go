package cli

import (
	"context"
	"fmt"
	"io"
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
// supervisor owns daemonising), exits on SIGTERM/SIGINT leaving containers
// running, and reloads its configuration on SIGHUP.
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
			log, level := newLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
			// Packages that log through slog's default (sandbox recovery,
			// libraries) then honour log_level and the daemon's format.
			slog.SetDefault(log)
			ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, unix.SIGHUP)
			defer signal.Stop(hup)
			return daemon.Run(ctx, daemon.Options{Config: cfg, Reload: flags.load, Log: log, Level: level, Hangup: hup})
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
			} else if flags.ov.Socket != "" {
				socket = flags.ov.Socket
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

// newLogger is the daemon's logger: log_format picks text or JSON, and the
// level is a LevelVar so a reload can change it.
func newLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by config
	lv.Set(l)
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}
