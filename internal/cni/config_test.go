package cni

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const fakeOK = `ADD) echo '{"cniVersion":"1.0.0"}' ;;`

func single(name, typ string) string {
	return `{"cniVersion": "1.0.0", "name": "` + name + `", "type": "` + typ + `"}`
}

func chain(name string, types ...string) string {
	var ps []string
	for _, t := range types {
		ps = append(ps, `{"type": "`+t+`"}`)
	}
	return `{"cniVersion": "1.0.0", "name": "` + name + `", "plugins": [` + strings.Join(ps, ",") + `]}`
}

func TestConfigChoiceIsLexicalAndFollowsChanges(t *testing.T) {
	e := newEnv(t)
	e.fakePlugin(t, "fake", fakeOK)
	info := func() Info {
		t.Helper()
		i, err := e.net.Info()
		if err != nil {
			t.Fatal(err)
		}
		return i
	}

	e.writeConf(t, "20-b.conflist", chain("b", "fake", "fake"))
	e.writeConf(t, "10-a.conf", single("a", "fake"))
	e.writeConf(t, "00-notes.txt", "not a config")
	if i := info(); i.File != "10-a.conf" || i.Name != "a" || !slices.Equal(i.Plugins, []string{"fake"}) {
		t.Fatalf("Info = %+v, want the .conf wrapped into a chain of one", i)
	}

	// A broken file that sorts first is skipped and reported.
	e.writeConf(t, "05-broken.conflist", `{"name": "x", "plugins": [`)
	if i := info(); i.File != "10-a.conf" || len(i.Skipped) != 1 || !strings.HasPrefix(i.Skipped[0], "05-broken.conflist: ") {
		t.Fatalf("Info = %+v, want 10-a.conf with 05-broken.conflist skipped", i)
	}

	// A new first file wins; an in-place rewrite of it (same size, same
	// timestamp tick) is seen.
	e.writeConf(t, "01-c.json", single("c1", "fake"))
	if i := info(); i.File != "01-c.json" || i.Name != "c1" {
		t.Fatalf("Info = %+v, want 01-c.json", i)
	}
	e.writeConf(t, "01-c.json", single("c2", "fake"))
	if i := info(); i.Name != "c2" {
		t.Fatalf("in-place edit not seen: %+v", i)
	}

	// Fixing the broken file makes it the choice.
	e.writeConf(t, "05-broken.conflist", chain("fixed", "fake"))
	os.Remove(filepath.Join(e.confDir, "01-c.json"))
	if i := info(); i.File != "05-broken.conflist" || i.Name != "fixed" || len(i.Skipped) != 0 {
		t.Fatalf("Info = %+v, want the fixed file", i)
	}

	for _, f := range []string{"05-broken.conflist", "10-a.conf"} {
		os.Remove(filepath.Join(e.confDir, f))
	}
	if i := info(); i.File != "20-b.conflist" || !slices.Equal(i.Plugins, []string{"fake", "fake"}) {
		t.Fatalf("Info = %+v, want 20-b.conflist", i)
	}
}

func TestConfigRejections(t *testing.T) {
	cases := map[string]struct{ file, body, reason string }{
		"chain in a .conf":   {"10.conf", chain("n", "fake"), ".conflist"},
		"no type":            {"10.conf", `{"cniVersion":"1.0.0","name":"n"}`, "type"},
		"no plugins":         {"10.conflist", `{"cniVersion":"1.0.0","name":"n","plugins":[]}`, "no plugins"},
		"bad network name":   {"10.conflist", chain("bad name!", "fake"), "network name"},
		"plugin type a path": {"10.conflist", chain("n", "../../bin/sh"), "not a plain binary name"},
		"not JSON":           {"10.conflist", "{", "parsing"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.writeConf(t, c.file, c.body)
			err := e.net.Ready()
			wantKind(t, err, errdefs.ErrFailedPrecondition)
			wantContains(t, err, "no usable CNI network config", c.file, c.reason)
		})
	}
}

func TestReady(t *testing.T) {
	base := t.TempDir()
	confDir, fakeDir := filepath.Join(base, "net.d"), filepath.Join(base, "bin")
	n, err := New(confDir, []string{fakeDir}, filepath.Join(base, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Ready()
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, confDir, "does not exist")

	os.MkdirAll(confDir, 0o755)
	os.MkdirAll(fakeDir, 0o755)
	err = n.Ready()
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, "no CNI network config", confDir)

	os.WriteFile(filepath.Join(confDir, "10.conflist"), []byte(chain("n", "fake", "nosuchplugin")), 0o644)
	os.WriteFile(filepath.Join(fakeDir, "fake"), []byte("#!/bin/sh\n"), 0o755)
	err = n.Ready()
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, `"nosuchplugin"`, "not installed", fakeDir)

	os.WriteFile(filepath.Join(fakeDir, "nosuchplugin"), []byte("#!/bin/sh\n"), 0o644)
	err = n.Ready()
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	wantContains(t, err, "nosuchplugin", "not executable")

	os.Chmod(filepath.Join(fakeDir, "nosuchplugin"), 0o755)
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready with config and plugins: %v", err)
	}
	if err := n.Status(context.Background()); err != nil {
		t.Fatalf("Status of a 1.0.0 config: %v", err)
	}
}

func TestStatusAsksPluginsFrom11(t *testing.T) {
	e := newEnv(t)
	down := filepath.Join(t.TempDir(), "down")
	e.fakePlugin(t, "ipamd", `STATUS) if [ -e `+down+` ]; then echo '{"code": 50, "msg": "ipam daemon not running"}'; exit 1; fi ;;`)
	e.writeConf(t, "10.conflist", `{"cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "ipamd"}]}`)
	if err := e.net.Status(context.Background()); err != nil {
		t.Fatalf("Status: %v", err)
	}
	os.WriteFile(down, nil, 0o644)
	err := e.net.Status(context.Background())
	wantKind(t, err, errdefs.ErrUnavailable)
	wantContains(t, err, "STATUS", "ipam daemon not running")
	if e.net.Ready() != nil {
		t.Fatal("Ready must not run plugins")
	}
}

func TestNewValidation(t *testing.T) {
	abs := t.TempDir()
	for _, c := range []struct {
		conf, cache string
		plugins     []string
	}{
		{"net.d", abs, []string{abs}},
		{abs, "cache", []string{abs}},
		{abs, abs, []string{"bin"}},
		{abs, abs, nil},
	} {
		_, err := New(c.conf, c.plugins, c.cache)
		wantKind(t, err, errdefs.ErrInvalidArgument)
	}
}
