package check

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/cradle-runtime/cradle/internal/cni"
	"github.com/cradle-runtime/cradle/internal/config"
)

// FromFile is FromConfig of a config file loaded as `cradle daemon
// --config file` loads it, for tests that check a daemon's dirs after it
// is gone.
func FromFile(file string) (Config, error) {
	loaded, err := config.Load(file, config.Overrides{})
	if err != nil {
		return Config{}, err
	}
	return FromConfig(loaded)
}

// FromConfig describes what the daemon of cfg would use, found as the
// daemon finds it (internal/daemon: openRuntimes, the CNI cache under
// root). A handler whose binary is missing is left out, as the daemon does.
func FromConfig(cfg *config.Loaded) (Config, error) {
	c := Config{Root: cfg.Root, State: cfg.State, ConmonPath: "/usr/bin/conmon"}
	if p, err := exec.LookPath("conmon"); err == nil {
		c.ConmonPath = p
	}
	names := make([]string, 0, len(cfg.Runtime.Handlers))
	for n := range cfg.Runtime.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		h := cfg.Runtime.Handlers[n]
		bin, err := exec.LookPath(h.Path)
		if err != nil {
			if c.Unusable == nil {
				c.Unusable = map[string]string{}
			}
			c.Unusable[n] = err.Error()
			continue
		}
		root := h.Root
		if root == "" {
			root = filepath.Join(cfg.State, "runtime", n)
		}
		c.Handlers = append(c.Handlers, Handler{Name: n, RuntimePath: bin, RuntimeRoot: root,
			StateDir: filepath.Join(cfg.State, "oci", n), RuntimeArgs: h.RuntimeArgs})
	}
	if _, err := os.Stat(cfg.Root); err != nil {
		return c, nil // Run refuses a missing root; creating the CNI cache would make one
	}
	network, err := cni.New(cfg.CNI.ConfDir, cfg.CNI.PluginDirs, filepath.Join(cfg.Root, "cni-cache"))
	if err != nil {
		return c, fmt.Errorf("CNI: %w", err)
	}
	c.CNI = network
	return c, nil
}
