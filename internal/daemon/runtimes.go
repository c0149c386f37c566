package daemon

import (
	"fmt"
	"log/slog"
	"os"
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
	openRetired(cfg, runtimes, conmon, log)
	return runtimes, nil
}

// openRetired opens, for stop and removal only, every handler that left
// containers in the state dir but is not usable now (removed from the
// configuration, or its binary is gone): without it those pods and
// containers could never be stopped or removed. It uses the binary and root
// the handler recorded, else the default handler's binary.
func openRetired(cfg *config.Loaded, runtimes map[string]*oci.Runtime, conmon string, log *slog.Logger) {
	ents, err := os.ReadDir(filepath.Join(cfg.State, "oci"))
	if err != nil {
		return
	}
	fallback := runtimes[cfg.Runtime.DefaultHandler]
	for _, e := range ents {
		name := e.Name()
		dir := filepath.Join(cfg.State, "oci", name)
		if !e.IsDir() || runtimes[name] != nil || !oci.HasContainers(dir) {
			continue
		}
		rc, err := oci.RetiredConfig(name, dir, fallback.RuntimePath(), filepath.Join(cfg.State, "runtime", name), conmon,
			cfg.Runtime.CgroupDriver == "systemd")
		if err != nil {
			log.Warn("retired runtime handler: using the default runtime binary", "handler", name, "err", err)
		}
		rc.Logger = log.With("component", "oci", "handler", name)
		rt, err := oci.New(rc)
		if err != nil {
			log.Error("runtime handler is gone and its containers cannot be managed", "handler", name, "err", err)
			continue
		}
		log.Warn("runtime handler is not configured but has containers: they can be stopped and removed, not created",
			"handler", name, "runtime", rc.RuntimePath)
		runtimes[name] = rt
	}
}

// usableHandlers are the handlers new pods and containers may use.
func usableHandlers(runtimes map[string]*oci.Runtime) []string {
	var names []string
	for name, rt := range runtimes {
		if !rt.Retired() {
			names = append(names, name)
		}
	}
	return names
}

func openRuntime(cfg *config.Loaded, name string, h config.HandlerConfig, conmon string, log *slog.Logger) (*oci.Runtime, error) {
	rc, err := runtimeConfig(cfg, name, h, conmon, log)
	if err != nil {
		return nil, err
	}
	return oci.New(rc)
}

// runtimeConfig is the oci.Config of handler name as cfg configures it.
func runtimeConfig(cfg *config.Loaded, name string, h config.HandlerConfig, conmon string, log *slog.Logger) (oci.Config, error) {
	bin, err := exec.LookPath(h.Path)
	if err != nil {
		return oci.Config{}, fmt.Errorf("runtime binary %q: %w", h.Path, err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return oci.Config{}, err
	}
	root := h.Root
	if root == "" {
		root = filepath.Join(cfg.State, "runtime", name)
	}
	relay := ""
	if h.Sandboxed {
		// conmon runs the daemon's binary as the relay (oci/relay.go).
		if relay, err = os.Executable(); err != nil {
			return oci.Config{}, fmt.Errorf("sandboxed runtime: the relay is the daemon's binary: %w", err)
		}
	}
	return oci.Config{
		Handler:       name,
		RuntimePath:   bin,
		RuntimeRoot:   root,
		ConmonPath:    conmon,
		StateDir:      filepath.Join(cfg.State, "oci", name),
		SystemdCgroup: cfg.Runtime.CgroupDriver == "systemd",
		CallTimeout:   h.CallTimeout.Std(),
		RuntimeArgs:   h.RuntimeArgs,
		Sandboxed:     h.Sandboxed,
		RelayPath:     relay,
		// Pod accounting covers the monitors, and stopping the daemon's
		// service cgroup does not take them down.
		MonitorCgroups: true,
		Logger:         log.With("component", "oci", "handler", name),
	}, nil
}

func closeRuntimes(runtimes map[string]*oci.Runtime) {
	for _, rt := range runtimes {
		_ = rt.Close()
	}
}

// usable is runtimes without the retired ones.
func usable(runtimes map[string]*oci.Runtime) map[string]*oci.Runtime {
	out := make(map[string]*oci.Runtime, len(runtimes))
	for _, name := range usableHandlers(runtimes) {
		out[name] = runtimes[name]
	}
	return out
}
