package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// cradleModule is the module path whose cmd/cradle the benchmark builds.
const cradleModule = "github.com/cradle-runtime/cradle"

// cradleSetup is a cradle daemon with its own root, state and socket under the
// work dir, on cradle's defaults for pulls.
type cradleSetup struct {
	bin                  string
	root, state, socket  string
	config, log          string
	certsDir, cniConfDir string
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
	}
}

func (c cradleSetup) configTOML() string {
	return fmt.Sprintf(`# written by cradle's bench/pull
root = %q
state = %q
socket = %q
log_level = "info"

[registry]
config_path = %q

[cni]
conf_dir = %q
`, c.root, c.state, c.socket, c.certsDir, c.cniConfDir)
}

func (c cradleSetup) start(ctx context.Context) (*daemon, error) {
	if err := os.MkdirAll(filepath.Dir(c.config), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.config, []byte(c.configTOML()), 0o644); err != nil {
		return nil, err
	}
	d, err := startDaemon(ctx, "cradle", []string{c.bin, "daemon", "--config", c.config}, c.log, c.socket)
	if err != nil {
		return nil, err
	}
	// Unpacked layers are all cradle keeps of an image besides its record;
	// layers/tmp/ is its scratch dir and must be empty too.
	d.storeDirs = []string{filepath.Join(c.root, "layers")}
	d.storeIgnore = map[string]bool{"tmp": true}
	return d, nil
}

// buildCradle builds cmd/cradle of the checkout the working directory is in
// into dir and returns the binary's path.
func buildCradle(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if _, serr := os.Stat("/usr/local/go/bin/go"); serr != nil {
			return "", fmt.Errorf("no Go toolchain to build cradle (pass -cradle PATH): %w", err)
		}
		goBin = "/usr/local/go/bin/go"
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	mod, err := os.ReadFile(gomod)
	if gomod == "" || gomod == os.DevNull || err != nil || !strings.Contains(string(mod), "module "+cradleModule+"\n") {
		return "", fmt.Errorf("run from cradle's checkout (go.mod of %s) or pass -cradle PATH", cradleModule)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cradle")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, cradleModule+"/cmd/cradle")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/cradle: %w\n%s", err, out)
	}
	return bin, nil
}
