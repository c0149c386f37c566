package cri

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestParsePodCIDRs(t *testing.T) {
	for in, want := range map[string]string{
		"10.244.1.0/24":                   "10.244.1.0/24",
		"10.244.1.7/24":                   "10.244.1.0/24",
		"10.244.1.0/24, fd00:10:244::/64": "10.244.1.0/24,fd00:10:244::/64",
	} {
		if got, err := parsePodCIDRs(in); err != nil || got != want {
			t.Errorf("parsePodCIDRs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"10.244.1.0", "banana", "10.244.1.0/24,", "10.0.0.0/33"} {
		if _, err := parsePodCIDRs(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("parsePodCIDRs(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}

func TestPodCIDRSurvivesANewStore(t *testing.T) {
	root := t.TempDir()
	var s runtimeConfigStore
	if got := s.podCIDR(root); got != "" {
		t.Fatalf("fresh store = %q", got)
	}
	if changed, err := s.setPodCIDR(root, "10.1.0.0/24"); err != nil || !changed {
		t.Fatalf("set = %v, %v", changed, err)
	}
	if changed, _ := s.setPodCIDR(root, "10.1.0.0/24"); changed {
		t.Error("the same CIDR again counts as a change")
	}
	var again runtimeConfigStore // a restarted daemon
	if got := again.podCIDR(root); got != "10.1.0.0/24" {
		t.Errorf("after restart = %q", got)
	}
	// A root that cannot be written: the error surfaces, memory keeps the old value.
	ro := filepath.Join(root, "missing")
	var s2 runtimeConfigStore
	if _, err := s2.setPodCIDR(ro, "10.2.0.0/24"); err == nil {
		t.Error("set under a missing root succeeded")
	}
	if got := s2.podCIDR(ro); got != "" {
		t.Errorf("failed set left %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, runtimeConfigFile)); err != nil {
		t.Error(err)
	}
}
