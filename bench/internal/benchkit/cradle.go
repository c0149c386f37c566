package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CradleModule is the module path whose cmd/cradle the benchmarks build.
const CradleModule = "github.com/cradle-runtime/cradle"

// CradleConfig is a cradle daemon's config file as the benchmarks write it:
// its own root, state and socket, otherwise cradle's defaults.
type CradleConfig struct {
	Comment             string // first line, after "# "
	Root, State, Socket string
	CertsDir            string // containerd-style hosts.toml tree
	CNIConfDir          string
	CNIPluginDirs       []string // omitted when empty: cradle's default
}

// TOML renders the config file.
func (c CradleConfig) TOML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# %s
root = %q
state = %q
socket = %q
log_level = "info"

[registry]
config_path = %q

[nri]
# its own socket: never the host's NRI
socket_path = %q

[cni]
conf_dir = %q
`, c.Comment, c.Root, c.State, c.Socket, c.CertsDir, filepath.Join(c.State, "nri.sock"), c.CNIConfDir)
	if len(c.CNIPluginDirs) > 0 {
		q := make([]string, len(c.CNIPluginDirs))
		for i, d := range c.CNIPluginDirs {
			q[i] = fmt.Sprintf("%q", d)
		}
		fmt.Fprintf(&b, "plugin_dirs = [%s]\n", strings.Join(q, ", "))
	}
	return b.String()
}

// BuildCradle builds cmd/cradle and cmd/cradled (the daemon `cradle daemon`
// execs) of the checkout the working directory is in into dir and returns
// cradle's path.
func BuildCradle(ctx context.Context, dir string) (string, error) {
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
	if gomod == "" || gomod == os.DevNull || err != nil || !strings.Contains(string(mod), "module "+CradleModule+"\n") {
		return "", fmt.Errorf("run from cradle's checkout (go.mod of %s) or pass -cradle PATH", CradleModule)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "cradle")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+"/", CradleModule+"/cmd/cradle", CradleModule+"/cmd/cradled")
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build cmd/cradle cmd/cradled: %w\n%s", err, out)
	}
	return bin, nil
}
