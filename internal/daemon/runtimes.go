package daemon

import (
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/oci"
)

// openRuntimes starts one oci.Runtime per configured handler. The default
// handler must work; another handler whose binary is missing is left out with
// a warning, so a node without gVisor still runs runc pods.
func openRuntimes(cfg *config.Loaded, log *slog.Logger) (map[string]*oci.Runtime, error) {
	conmon, err := exec.LookPath("conmon")
	if err != nil {
		return nil, fmt.Errorf("conmon not found in PATH (apt-get install conmon): %w", err)
	}
	names := make([]string, 0, len(cfg.Runtime.Handlers))
	for name := range cfg.Runtime.Handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	runtimes := map[string]*oci.Runtime{}
	for _, name := range names {
		h := cfg.Runtime.Handlers[name]
		rt, err := openRuntime(cfg, name, h, conmon, log)
		if err != nil {
			if name == cfg.Runtime.DefaultHandler {
				closeRuntimes(runtimes)
				return nil, fmt.Errorf("default runtime handler %q: %w", name, err)
			}
			log.Warn("runtime handler unavailable", "handler", name, "err", err)
			continue
		}
		runtimes[name] = rt
	}
	return runtimes, nil
}

func openRuntime(cfg *config.Loaded, name string, h config.HandlerConfig, conmon string, log *slog.Logger) (*oci.Runtime, error) {
	bin, err := exec.LookPath(h.Path)
	if err != nil {
		return nil, fmt.Errorf("runtime binary %q: %w", h.Path, err)
	}
	root := h.Root
	if root == "" {
		root = filepath.Join(cfg.State, "runtime", name)
	}
	return oci.New(oci.Config{
		Handler:       name,
		RuntimePath:   bin,
		RuntimeRoot:   root,
		ConmonPath:    conmon,
		StateDir:      filepath.Join(cfg.State, "oci", name),
		SystemdCgroup: cfg.Runtime.CgroupDriver == "systemd",
		CallTimeout:   h.CallTimeout.Std(),
		// Pod accounting covers the monitors, and stopping the daemon's
		// service cgroup does not take them down.
		MonitorCgroups: true,
		Logger:         log.With("component", "oci", "handler", name),
	})
}

func closeRuntimes(runtimes map[string]*oci.Runtime) {
	for _, rt := range runtimes {
		_ = rt.Close()
	}
}
