package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// cradleSetup is a cradle daemon with its own root, state and socket under the
// work dir, on cradle's defaults for pulls.
type cradleSetup struct {
	bin                  string
	root, state, socket  string
	config, log          string
	certsDir, cniConfDir string
	debugSock            string // pprof (CRADLE_DEBUG_ADDR), for profiling a pull by hand
}

func newCradleSetup(work, bin, certsDir, cniConfDir string) cradleSetup {
	dir := filepath.Join(work, "cradle")
	return cradleSetup{
		bin:        bin,
		root:       filepath.Join(dir, "root"),
		state:      filepath.Join(dir, "state"),
		socket:     filepath.Join(dir, "state", "cradle.sock"),
		config:     filepath.Join(dir, "cradle.toml"),
		log:        filepath.Join(dir, "cradle.log"),
		certsDir:   certsDir,
		cniConfDir: cniConfDir,
		debugSock:  filepath.Join(dir, "debug.sock"),
	}
}

func (c cradleSetup) configTOML() string {
	return benchkit.CradleConfig{
		Comment: "written by cradle's bench/pull",
		Root:    c.root, State: c.state, Socket: c.socket,
		CertsDir:   c.certsDir,
		CNIConfDir: c.cniConfDir,
	}.TOML()
}

func (c cradleSetup) start(ctx context.Context) (*daemon, error) {
	if err := os.MkdirAll(filepath.Dir(c.config), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, "cradle", []string{c.bin, "daemon", "--config", c.config}, c.log, c.socket,
		"CRADLE_DEBUG_ADDR=unix:"+c.debugSock)
	if err != nil {
		return nil, err
	}
	// Unpacked layers are all cradle keeps of an image besides its record;
	// layers/tmp/ is its scratch dir and must be empty too.
	d.storeDirs = []string{filepath.Join(c.root, "layers")}
	d.storeIgnore = map[string]bool{"tmp": true}
	return d, nil
}
