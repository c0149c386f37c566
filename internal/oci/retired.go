package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// handlerFile records, in the handler's StateDir, the runtime binary and
// root its containers were made with. A handler an operator removes from
// the configuration still has containers that must be stopped and removed,
// and only that binary with that root can do it.
const handlerFile = "handler.json"

type handlerRecord struct {
	RuntimePath   string `json:"runtimePath"`
	RuntimeRoot   string `json:"runtimeRoot"`
	SystemdCgroup bool   `json:"systemdCgroup"`
	// RuntimeArgs: the handler's runtime_args; a runtime may need them to
	// find its containers again (gVisor's --network is part of its state).
	RuntimeArgs []string `json:"runtimeArgs,omitempty"`
	Sandboxed   bool     `json:"sandboxed,omitempty"`
	RelayPath   string   `json:"relayPath,omitempty"`
}

func (r *Runtime) writeHandlerRecord() error {
	data, err := json.Marshal(handlerRecord{RuntimePath: r.cfg.RuntimePath, RuntimeRoot: r.cfg.RuntimeRoot,
		SystemdCgroup: r.cfg.SystemdCgroup, RuntimeArgs: r.cfg.RuntimeArgs, Sandboxed: r.cfg.Sandboxed, RelayPath: r.cfg.RelayPath})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.cfg.StateDir, handlerFile), data)
}

// RetiredConfig returns the Config of a handler that is no longer
// configured but left state in stateDir: its recorded binary and root when
// they are still there, else fallbackRuntime, defaultRoot and
// systemdCgroup (a state dir from before the record existed). The Runtime it opens refuses to create
// containers; it stops, deletes and reports the ones it has.
func RetiredConfig(handler, stateDir, fallbackRuntime, defaultRoot, conmon string, systemdCgroup bool) (Config, error) {
	cfg := Config{Handler: handler, StateDir: stateDir, ConmonPath: conmon, SystemdCgroup: systemdCgroup,
		RuntimePath: fallbackRuntime, RuntimeRoot: defaultRoot, Retired: true, MonitorCgroups: true}
	data, err := os.ReadFile(filepath.Join(stateDir, handlerFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return cfg, nil
	case err != nil:
		return cfg, fmt.Errorf("oci %s: %w", handler, err)
	}
	var rec handlerRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return cfg, errdefs.New(errdefs.ErrDataLoss, "oci %s: corrupt %s: %v", handler, handlerFile, err)
	}
	if rec.RuntimeRoot != "" {
		cfg.RuntimeRoot = rec.RuntimeRoot
	}
	if fi, err := os.Stat(rec.RuntimePath); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		cfg.RuntimePath = rec.RuntimePath
	}
	cfg.SystemdCgroup = rec.SystemdCgroup
	cfg.RuntimeArgs, cfg.Sandboxed, cfg.RelayPath = rec.RuntimeArgs, rec.Sandboxed, rec.RelayPath
	return cfg, nil
}

// HasContainers reports whether stateDir holds any container's state.
func HasContainers(stateDir string) bool {
	ents, err := os.ReadDir(filepath.Join(stateDir, "ctr"))
	return err == nil && len(ents) > 0
}

// RuntimePath is the runtime binary this Runtime runs.
func (r *Runtime) RuntimePath() string { return r.cfg.RuntimePath }

// Retired reports whether this handler is only kept to wind its
// containers down.
func (r *Runtime) Retired() bool { return r.retired.Load() }

// SetRetired retires a handler a configuration reload removed (its
// containers can still be stopped and removed, no new one is created), or
// brings back one the reload configures again with the same binary and
// root; coming back it records them again in handler.json.
func (r *Runtime) SetRetired(retired bool) error {
	if !retired && r.retired.Load() {
		if err := r.writeHandlerRecord(); err != nil {
			return fmt.Errorf("oci %s: %w", r.cfg.Handler, err)
		}
	}
	r.retired.Store(retired)
	return nil
}

// Settings returns the configuration the Runtime was opened with, so a
// reload can tell whether a handler's new configuration changes anything.
func (r *Runtime) Settings() Config {
	c := r.cfg
	c.Retired = r.retired.Load()
	return c
}

func (r *Runtime) refuseRetired(id string) error {
	if r.retired.Load() {
		return errdefs.FailedPrecondition("runtime handler %q is no longer configured: its containers can only be stopped and removed (container %s)", r.cfg.Handler, id)
	}
	return nil
}

// Has reports whether this runtime keeps state for container id (it may
// be half-created: no monitor record yet).
func (r *Runtime) Has(id string) bool {
	if validID(id) != nil {
		return false
	}
	_, err := os.Stat(r.ctrDir(id))
	return err == nil
}

// Sandboxed says whether the runtime runs each pod in one sandbox.
func (r *Runtime) Sandboxed() bool { return r.cfg.Sandboxed }
