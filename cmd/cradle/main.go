// Command cradle is the cradle container runtime: `cradle daemon` serves the
// CRI, the other verbs are its client. See internal/cli.
package main

import (
	"os"

	"github.com/cradle-runtime/cradle/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
