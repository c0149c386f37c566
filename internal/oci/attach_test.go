package oci

import (
	"strings"
	"testing"
)

func TestAttachSocketFitsForLongIDsAndStateDirs(t *testing.T) {
	r := &Runtime{cfg: Config{StateDir: "/run/cradle-critest/state/oci/runc"}}
	a := strings.Repeat("a", 64)
	b := strings.Repeat("a", 63) + "b"
	if len(r.AttachSocketPath(a)) >= maxSocketPath {
		t.Errorf("attach socket path too long: %s", r.AttachSocketPath(a))
	}
	if r.AttachSocketPath(a) == r.AttachSocketPath(b) {
		t.Error("IDs sharing a long prefix share an attach socket")
	}
	if got := attachName("short-id"); got != "short-id" {
		t.Errorf("short IDs are kept as they are, got %q", got)
	}
}
