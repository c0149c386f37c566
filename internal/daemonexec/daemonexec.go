// Package daemonexec turns `cradle daemon ...` into `cradled ...` (exec,
// same pid) while the process is still starting: its init runs before the
// CLI's packages initialise (Go initialises packages in import-path order
// once their imports are done, and this one imports only the standard
// library), so a daemon start does not pay for the client's start as well
// — about 50 ms under load, 200 ms in a race build, on every restart. The
// cobra command `daemon` (internal/cli) does the same exec for a command
// line this does not recognise (global flags before the verb) and reports
// a missing cradled.
package daemonexec

import (
	"os"
	"path/filepath"
	"syscall"
)

// Binary is the daemon's executable, beside the cradle binary.
const Binary = "cradled"

func init() {
	self, err := os.Executable()
	if err != nil {
		return
	}
	if bin, argv, ok := target(os.Args, self); ok {
		// Only returns on failure; the CLI then tries again and reports it.
		_ = syscall.Exec(bin, argv, os.Environ())
	}
}

// target is the exec that the command line args of the binary at self
// turns into: cradled beside it, with every argument after `daemon`.
func target(args []string, self string) (bin string, argv []string, ok bool) {
	if len(args) < 2 || args[1] != "daemon" {
		return "", nil, false
	}
	bin = filepath.Join(filepath.Dir(self), Binary)
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return "", nil, false // the CLI looks on PATH too, and says what is missing
	}
	return bin, append([]string{bin}, args[2:]...), true
}
