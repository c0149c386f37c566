// Command cradled is the cradle daemon: it serves the CRI on a unix socket.
// `cradle daemon` runs it (exec, same pid) with the same flags. It is a
// binary of its own so that the daemon's memory holds only the daemon's
// code: the CLI's client dependencies stay in cmd/cradle.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/daemon"
	"github.com/cradle-runtime/cradle/internal/oci"
)

func main() {
	// conmon runs the daemon's binary as the relay of a sandboxed runtime's
	// containers (internal/oci/relay.go): no flags, no logging set-up.
	if len(os.Args) > 1 && os.Args[1] == oci.RelayVerb {
		os.Exit(oci.RelayMain(os.Args[2:]))
	}
	var f config.Flags
	fs := flag.NewFlagSet("cradled", flag.ContinueOnError)
	f.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cradled [flags] (usually run as `cradle daemon [flags]`)\n\nRun the CRI daemon in the foreground.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	switch err := fs.Parse(os.Args[1:]); {
	case err == flag.ErrHelp:
		os.Exit(0)
	case err != nil:
		os.Exit(2)
	case fs.NArg() > 0:
		fmt.Fprintf(os.Stderr, "Error: cradled takes no arguments, got %q\n", fs.Args())
		os.Exit(2)
	}
	if err := run(&f); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run(f *config.Flags) error {
	cfg, err := f.Load()
	if err != nil {
		return err
	}
	log, level := daemon.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	// Packages that log through slog's default (sandbox recovery,
	// libraries) then honour log_level and the daemon's format.
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, unix.SIGHUP)
	defer signal.Stop(hup)
	return daemon.Run(ctx, daemon.Options{Config: cfg, Reload: f.Load, Log: log, Level: level, Hangup: hup})
}
