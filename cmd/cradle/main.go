// Command cradle is the cradle container runtime's command: `cradle daemon`
// becomes cradled (cmd/cradled), which serves the CRI; the other verbs are
// its client. See internal/cli.
package main

import (
	"os"

	"github.com/cradle-runtime/cradle/internal/cli"
	// Before the CLI's packages initialise: `cradle daemon` becomes cradled.
	_ "github.com/cradle-runtime/cradle/internal/daemonexec"
)

func main() { os.Exit(cli.Execute()) }
