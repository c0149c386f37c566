package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestRetiredConfigFollowsTheRecord(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "myruntime")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "s")
	r, err := New(Config{Handler: "gone", RuntimePath: bin, RuntimeRoot: dir + "/myroot", ConmonPath: "/bin/true", StateDir: state, SystemdCgroup: true})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	cfg, err := RetiredConfig("gone", state, "/usr/bin/fallback", "/default/root", "/bin/true", false)
	if err != nil || cfg.RuntimePath != bin || cfg.RuntimeRoot != dir+"/myroot" || !cfg.SystemdCgroup || !cfg.Retired {
		t.Errorf("from the record: %+v, %v", cfg, err)
	}
	os.Remove(bin)
	if cfg, _ := RetiredConfig("gone", state, "/usr/bin/fallback", "/default/root", "/bin/true", false); cfg.RuntimePath != "/usr/bin/fallback" || cfg.RuntimeRoot != dir+"/myroot" {
		t.Errorf("binary gone: %+v, want the fallback binary on the recorded root", cfg)
	}
	os.WriteFile(filepath.Join(state, handlerFile), []byte("{"), 0o600)
	cfg, err = RetiredConfig("gone", state, "/usr/bin/fallback", "/default/root", "/bin/true", false)
	if !errors.Is(err, errdefs.ErrDataLoss) || cfg.RuntimePath != "/usr/bin/fallback" || cfg.RuntimeRoot != "/default/root" {
		t.Errorf("corrupt record: %+v, %v", cfg, err)
	}

	rt, err := New(Config{Handler: "gone", RuntimePath: "/bin/true", RuntimeRoot: dir + "/r", ConmonPath: "/bin/true", StateDir: dir + "/s2", Retired: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := rt.Create(context.Background(), CreateOpts{ID: "x", Bundle: dir}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Create on a retired handler: %v, want FailedPrecondition", err)
	}
}
