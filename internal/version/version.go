// Package version holds cradle's build version (set with -ldflags -X).
package version

// Version is cradle's version; release builds set it with
// -ldflags "-X github.com/cradle-runtime/cradle/internal/version.Version=v1.2.3".
var Version = "0.1.0-dev"

// RuntimeName is what Version reports as the runtime's name.
const RuntimeName = "cradle"

// CRIVersion is the CRI API version served.
const CRIVersion = "v1"
