package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// featuresScript writes a shell script standing in for a runtime binary.
func featuresScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runtime")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDetectFeatures(t *testing.T) {
	rt := featuresScript(t, `[ "$1" = features ] || exit 2
echo '{"ociVersionMin":"1.0.0","ociVersionMax":"1.2.0","mountOptions":["bind","rbind","ro","rro"]}'`)
	f, err := DetectFeatures(context.Background(), rt)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.MountOptions, "rro") || f.OCIVersionMax != "1.2.0" {
		t.Errorf("features = %+v, want mountOptions with rro and ociVersionMax 1.2.0", f)
	}
}

func TestDetectFeaturesFailures(t *testing.T) {
	cases := []struct {
		name, body, substr string
	}{
		{"no features command", `echo "No help topic for '$1'" >&2; exit 3`, "No help topic"},
		{"not JSON", `echo 'features: all of them'`, "parse output"},
		{"huge output", `yes '"x",' | head -c 2000000`, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DetectFeatures(context.Background(), featuresScript(t, c.body))
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("err = %v, want one containing %q", err, c.substr)
			}
		})
	}
	t.Run("missing binary", func(t *testing.T) {
		if _, err := DetectFeatures(context.Background(), filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("no error for a missing runtime binary")
		}
	})
}

func TestDetectFeaturesTimesOut(t *testing.T) {
	rt := featuresScript(t, `exec sleep 60`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := DetectFeatures(ctx, rt)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hung runtime held start-up for %s", d)
	}
}
