package benchkit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// PodFlags are the flags of the pod benchmarks that name the runtimes and
// the work dir.
type PodFlags struct {
	Keep               bool
	Cradle, Containerd string
	Runc, Workdir      string
}

// Register declares the flags on the default flag set.
func (f *PodFlags) Register() {
	flag.BoolVar(&f.Keep, "keep", false, "keep the work dir (configs, logs)")
	flag.StringVar(&f.Cradle, "cradle", "", "cradle binary, with cradled beside it (default: build ./cmd/cradle and ./cmd/cradled of this checkout)")
	flag.StringVar(&f.Containerd, "containerd", "/usr/bin/containerd", "containerd binary (1.6, Debian's package)")
	flag.StringVar(&f.Runc, "runc", "/usr/sbin/runc", "runc binary named in containerd's config")
	flag.StringVar(&f.Workdir, "workdir", "/var/tmp", "parent of the work dir")
}

// Main parses the flags and calls run with a context that SIGINT and
// SIGTERM cancel (the program then cleans up in order); stray arguments
// exit 2, an error from run exits 1 after "name: error".
func Main(name string, run func(context.Context) error) {
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unexpected arguments: %v\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
