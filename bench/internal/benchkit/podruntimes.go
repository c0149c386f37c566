package benchkit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ContainerdPods is a private containerd for pod benchmarks: its own root,
// state, socket and CNI config under Dir, so it never meets a system
// containerd.
type ContainerdPods struct {
	Comment                 string // first line of the config file
	Bin, Runc, SandboxImage string
	CertsDir                string
	Dir                     string // root/, state/, config.toml, containerd.log
	Net                     Network
}

// Socket is where it serves CRI.
func (c ContainerdPods) Socket() string { return filepath.Join(c.Dir, "state", "containerd.sock") }

// Root is its root dir.
func (c ContainerdPods) Root() string { return filepath.Join(c.Dir, "root") }

// ConfigTOML keeps CRI defaults wherever they touch pods, with the settings
// a private instance on this host needs: the sandbox image from the local
// registry (pulled plain HTTP), oom_score_adj clamped (no CAP_SYS_RESOURCE
// in this VM's bounding set) and no hugetlb controller.
func (c ContainerdPods) ConfigTOML() string {
	return ContainerdConfig{
		Comment: c.Comment,
		Root:    c.Root(), State: filepath.Join(c.Dir, "state"), Socket: c.Socket(),
		Runc:         c.Runc,
		SandboxImage: c.SandboxImage,
		CNIBinDir:    CNIPluginDir,
		CNIConfDir:   c.Net.ConfDir,
		CNIMaxConfs:  1,
		CertsDir:     c.CertsDir,
	}.TOML()
}

// Start writes the configs and starts containerd; timeout bounds every CRI
// call, as kubelet's runtime-request timeout does.
func (c ContainerdPods) Start(ctx context.Context, timeout time.Duration) (*Daemon, error) {
	for _, dir := range []string{c.Root(), filepath.Join(c.Dir, "state")} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
	}
	if err := c.Net.Write(); err != nil {
		return nil, err
	}
	config := filepath.Join(c.Dir, "config.toml")
	if err := os.WriteFile(config, []byte(c.ConfigTOML()), 0o644); err != nil {
		return nil, err
	}
	sock := c.Socket()
	d, err := StartDaemon(ctx, DaemonSpec{
		Name: "containerd", Argv: []string{c.Bin, "--config", config},
		LogPath: filepath.Join(c.Dir, "containerd.log"), Socket: sock,
		RuntimeTimeout: timeout, ImageTimeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	// A runc v2 shim serves one pod (its pause and app containers) and
	// names the daemon that started it with -address.
	d.IsMonitor = func(argv []string) bool {
		if len(argv) == 0 || filepath.Base(argv[0]) != "containerd-shim-runc-v2" {
			return false
		}
		i := slices.Index(argv, "-address")
		return i >= 0 && i+1 < len(argv) && argv[i+1] == sock
	}
	return d, nil
}

// CradlePods is a cradle daemon for pod benchmarks with its own root,
// state, socket and CNI config under Dir, otherwise on cradle's defaults.
type CradlePods struct {
	Comment       string // first line of the config file
	Bin, CertsDir string
	Dir           string // root/, state/, cradle.toml, cradle.log
	Net           Network
	Env           []string // added to the daemon's environment
}

// Root, State and Socket are the daemon's dirs and socket.
func (c CradlePods) Root() string   { return filepath.Join(c.Dir, "root") }
func (c CradlePods) State() string  { return filepath.Join(c.Dir, "state") }
func (c CradlePods) Socket() string { return filepath.Join(c.Dir, "state", "cradle.sock") }

// ConfigTOML is the daemon's config file.
func (c CradlePods) ConfigTOML() string {
	return CradleConfig{
		Comment: c.Comment,
		Root:    c.Root(), State: c.State(), Socket: c.Socket(),
		CertsDir:      c.CertsDir,
		CNIConfDir:    c.Net.ConfDir,
		CNIPluginDirs: []string{CNIPluginDir},
	}.TOML()
}

// Start writes the configs and starts the daemon; timeout bounds every CRI
// call, as kubelet's runtime-request timeout does.
func (c CradlePods) Start(ctx context.Context, timeout time.Duration) (*Daemon, error) {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := c.Net.Write(); err != nil {
		return nil, err
	}
	config := filepath.Join(c.Dir, "cradle.toml")
	if err := os.WriteFile(config, []byte(c.ConfigTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := StartDaemon(ctx, DaemonSpec{
		Name: "cradle", Argv: []string{c.Bin, "daemon", "--config", config}, Env: c.Env,
		LogPath: filepath.Join(c.Dir, "cradle.log"), Socket: c.Socket(),
		RuntimeTimeout: timeout, ImageTimeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	// conmon daemonizes, so it is no child of cradle; its arguments name
	// paths under cradle's own dirs.
	dir := c.Dir + "/"
	d.IsMonitor = func(argv []string) bool {
		if len(argv) == 0 || filepath.Base(argv[0]) != "conmon" {
			return false
		}
		return slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, dir) })
	}
	return d, nil
}
