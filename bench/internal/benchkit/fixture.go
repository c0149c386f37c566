package benchkit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// Executable tells why path is no executable file, or nil.
func Executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// CheckExecutables checks flag and path pairs ("-containerd",
// "/usr/bin/containerd", ...); an empty path (build or find the default) is
// skipped.
func CheckExecutables(flagPaths ...string) error {
	for i := 0; i+1 < len(flagPaths); i += 2 {
		if flagPaths[i+1] == "" {
			continue
		}
		if err := Executable(flagPaths[i+1]); err != nil {
			return fmt.Errorf("%s: %w", flagPaths[i], err)
		}
	}
	return nil
}

// FinishWorkDir ends a benchmark's work dir: kept (and said so) or
// unmounted and removed.
func FinishWorkDir(dir string, keep bool) error {
	if keep {
		fmt.Printf("\nkept %s (configs, logs)\n", dir)
		return nil
	}
	return RemoveWorkDir(dir)
}

// PodFixture is what a pod benchmark sets up before its daemons: cradle's
// binary, the registry on 127.0.0.1 serving the pod images, and the
// hosts.toml tree both runtimes read.
type PodFixture struct {
	CradleBin string // "" when cradle is not wanted
	Images    PodImages
	CertsDir  string
	reg       *testkit.Registry
}

// NewPodFixture builds cmd/cradle into work/bin unless cradleBin names one
// (or cradle is not wanted), starts the registry and pushes the images.
// Close stops the registry.
func NewPodFixture(ctx context.Context, work, cradleBin string, wantCradle bool) (*PodFixture, error) {
	f := &PodFixture{CradleBin: cradleBin, CertsDir: filepath.Join(work, "certs.d")}
	if cradleBin == "" && wantCradle {
		fmt.Fprintln(os.Stderr, "building cmd/cradle ...")
		bin, err := BuildCradle(ctx, filepath.Join(work, "bin"))
		if err != nil {
			return nil, err
		}
		f.CradleBin = bin
	}
	reg, err := testkit.StartRegistry()
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	f.reg = reg
	if f.Images, err = PushPodImages(reg); err != nil {
		reg.Close()
		return nil, err
	}
	if err := WriteHostsDir(f.CertsDir, reg.Host); err != nil {
		reg.Close()
		return nil, err
	}
	return f, nil
}

// Close stops the registry.
func (f *PodFixture) Close() { f.reg.Close() }

// Shutdown is the clean-up of a pod benchmark's daemon: it tears down every
// pod the daemon knows (a failure goes to stderr), stops the daemon and
// kills the monitors it left behind.
func (d *Daemon) Shutdown(ctx context.Context) {
	if err := RemoveAllPods(ctx, d.Runtime); err != nil {
		fmt.Fprintf(os.Stderr, "clean-up of %s pods: %v\n", d.Name, d.Explain(err))
	}
	d.Stop()
	KillMonitors(d)
}
