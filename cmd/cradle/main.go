// Command cradle is the cradle container runtime: `cradle daemon` serves the
// CRI, the other verbs are its client. See internal/cli.
package main

import (
	"os"

	"github.com/cradle-runtime/cradle/internal/cli"
	"github.com/cradle-runtime/cradle/internal/oci"
)

func main() {
	// conmon runs the binary as the relay of a sandboxed runtime's
	// containers (internal/oci/relay.go): no CLI, no logging set-up.
	if len(os.Args) > 1 && os.Args[1] == oci.RelayVerb {
		os.Exit(oci.RelayMain(os.Args[2:]))
	}
	os.Exit(cli.Execute())
}
