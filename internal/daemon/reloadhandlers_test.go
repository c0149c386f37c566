package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/handlers"
	"github.com/cradle-runtime/cradle/internal/spec"
)

func handlersConfig(t *testing.T, state, def string, extra map[string]string) *config.Loaded {
	t.Helper()
	c := config.Default()
	c.State = state
	c.Runtime.DefaultHandler = def
	for name, path := range extra {
		c.Runtime.Handlers[name] = config.HandlerConfig{Path: path, Type: "oci"}
	}
	return &config.Loaded{Config: c}
}

// The handler applier: adds, retires a removed handler that has
// containers, brings it back, drops it once empty, and refuses a default
// handler that cannot run, leaving the set as it was.
func TestHandlerApplier(t *testing.T) {
	for _, bin := range []string{"runc", "conmon"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	state := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	cur := handlersConfig(t, state, "runc", nil)
	opened, err := openRuntimes(cur, log)
	if err != nil {
		t.Fatal(err)
	}
	set := handlers.New(handlers.Snapshot{Default: "runc", Runtimes: opened})
	t.Cleanup(func() { closeRuntimes(set.All()) })
	a := handlerApplier(set, spec.HostFacts{}, log)
	apply := func(next *config.Loaded) error {
		t.Helper()
		commit, _, err := a.Prepare(context.Background(), cur, next)
		if err != nil {
			return err
		}
		commit()
		cur = next
		return nil
	}
	runc, _ := exec.LookPath("runc")

	if err := apply(handlersConfig(t, state, "alt", map[string]string{"alt": runc})); err != nil {
		t.Fatal(err)
	}
	alt := set.Runtime("alt")
	if set.Default() != "alt" || set.Runtime("") != alt || !slices.Equal(set.Usable(), []string{"alt", "runc"}) {
		t.Fatalf("after adding alt as the default: default %q, usable %v", set.Default(), set.Usable())
	}

	// alt has a container: removing it retires it.
	ctr := filepath.Join(state, "oci", "alt", "ctr", "c1")
	if err := os.MkdirAll(ctr, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := apply(handlersConfig(t, state, "runc", nil)); err != nil {
		t.Fatal(err)
	}
	if set.Runtime("alt") != alt || !alt.Retired() || !slices.Equal(set.Usable(), []string{"runc"}) || set.Default() != "runc" {
		t.Fatalf("removed handler with containers: retired=%v usable %v", alt.Retired(), set.Usable())
	}
	// Configured again the same way: the same runtime, usable again.
	if err := apply(handlersConfig(t, state, "runc", map[string]string{"alt": runc})); err != nil {
		t.Fatal(err)
	}
	if set.Runtime("alt") != alt || alt.Retired() {
		t.Fatalf("re-added handler: same runtime %v, retired %v", set.Runtime("alt") == alt, alt.Retired())
	}
	// Changed while it has containers: keeps its settings.
	script := filepath.Join(t.TempDir(), "other-runc")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec runc \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := apply(handlersConfig(t, state, "runc", map[string]string{"alt": script})); err != nil {
		t.Fatal(err)
	}
	if set.Runtime("alt") != alt || alt.Settings().RuntimePath != runc {
		t.Fatalf("a handler with containers changed its runtime to %s", set.Runtime("alt").Settings().RuntimePath)
	}
	// Without containers the change applies: a new runtime.
	if err := os.RemoveAll(ctr); err != nil {
		t.Fatal(err)
	}
	if err := apply(handlersConfig(t, state, "runc", map[string]string{"alt": script})); err != nil {
		t.Fatal(err)
	}
	if got := set.Runtime("alt"); got == alt || got.Settings().RuntimePath != script {
		t.Fatalf("changed handler without containers: %v", got.Settings().RuntimePath)
	}
	// Removed without containers: gone.
	if err := apply(handlersConfig(t, state, "runc", nil)); err != nil {
		t.Fatal(err)
	}
	if set.Runtime("alt") != nil {
		t.Fatal("a removed handler without containers is still there")
	}

	// A default handler that cannot run fails the section; nothing changes.
	before := set.Load()
	bad := handlersConfig(t, state, "gone", map[string]string{"gone": "/nonexistent/runtime", "extra": runc})
	if _, _, err := a.Prepare(context.Background(), cur, bad); err == nil {
		t.Fatal("a default handler without a binary was accepted")
	}
	if after := set.Load(); after.Default != before.Default || len(after.Runtimes) != len(before.Runtimes) {
		t.Errorf("a failed prepare changed the set: %+v", after)
	}
}
