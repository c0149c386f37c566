package oci

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// conmon runs the relay with the runtime's globals and create arguments
// after "--"; the relay must split them back exactly.
func TestRelayArgsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := &Runtime{cfg: Config{Handler: "gvisor", RuntimePath: "/usr/bin/runsc", RuntimeRoot: "/run/x/runtime/gvisor",
		StateDir: dir, RuntimeArgs: []string{"--network=host", "--debug"}, Sandboxed: true,
		RelayPath: "/usr/bin/cradle", SystemdCgroup: true}}
	args := r.conmonRuntime(CreateOpts{ID: "c1", relay: true})
	if args[0] != "-r" || args[1] != "/usr/bin/cradle" {
		t.Fatalf("conmon runs %q, want the relay", args[:2])
	}
	var runtimeArgs []string
	for i := 2; i < len(args); i += 2 {
		if args[i] != "--runtime-arg" {
			t.Fatalf("conmon args %q", args)
		}
		runtimeArgs = append(runtimeArgs, args[i+1])
	}
	if runtimeArgs[0] != RelayVerb {
		t.Fatalf("relay verb missing: %q", runtimeArgs)
	}
	// What conmon appends after the runtime args.
	full := append(runtimeArgs[1:], "create", "--bundle", "/b", "--pid-file", "/p", "c1")
	a, err := parseRelayArgs(full)
	if err != nil {
		t.Fatal(err)
	}
	wantGlobals := []string{"--root=/run/x/runtime/gvisor", "--network=host", "--debug", "--systemd-cgroup"}
	if a.runtime != "/usr/bin/runsc" || a.dir != filepath.Join(dir, "ctr", "c1") || !slices.Equal(a.globals, wantGlobals) ||
		strings.Join(a.rest, " ") != "create --bundle /b --pid-file /p c1" {
		t.Errorf("parsed %+v", a)
	}
	// Not relayed: the runtime itself, with the same globals.
	plain := r.conmonRuntime(CreateOpts{ID: "c1"})
	if strings.Join(plain, " ") != "-r /usr/bin/runsc --runtime-arg --root=/run/x/runtime/gvisor --runtime-arg --network=host --runtime-arg --debug" {
		t.Errorf("plain conmon runtime args %q", plain)
	}
	for _, bad := range [][]string{
		{"--runtime=/x", "--dir=/d", "--", "create"},                // no --globals
		{"--runtime=/x", "--dir=/d", "--globals=3", "--", "create"}, // too few
		{"--dir=/d", "--globals=0", "--", "create"},                 // no runtime
		{"--runtime=/x", "--dir=/d", "--globals=0"},                 // no --
		{"--bogus"},
	} {
		if _, err := parseRelayArgs(bad); err == nil {
			t.Errorf("parseRelayArgs(%q) accepted", bad)
		}
	}
}

// Only containers joining a sandbox go through the relay; the sandbox
// container itself, and every container of a runtime that is not
// sandboxed, is conmon's as usual.
func TestRelayedOnlyJoiningContainers(t *testing.T) {
	dir := t.TempDir()
	write := func(name, typ string) string {
		b := filepath.Join(dir, name)
		if err := os.MkdirAll(b, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b, "config.json"), []byte(`{"annotations":{"`+annotationContainerType+`":"`+typ+`"}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return b
	}
	sandbox, ctr := write("sb", "sandbox"), write("c", "container")
	r := &Runtime{cfg: Config{Sandboxed: true}}
	if r.relayed(sandbox) || !r.relayed(ctr) {
		t.Errorf("sandboxed runtime: sandbox relayed %v, container relayed %v", r.relayed(sandbox), r.relayed(ctr))
	}
	r.cfg.Sandboxed = false
	if r.relayed(ctr) {
		t.Error("a runtime that is not sandboxed relays")
	}
}
