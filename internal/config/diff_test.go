package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The packaged /etc/cradle/cradle.toml: every line a comment, so it loads
// to exactly the defaults, and every key is there to uncomment.
func TestCommentedDefaultsLoadToTheDefaults(t *testing.T) {
	out, err := CommentedDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("line is not a comment: %q", line)
		}
	}
	for _, key := range []string{"#root = ", "#log_format = 'text'", "#[registry]", "#stall_timeout = ", "#[runtime.handlers.runc]", "#url_ttl = ", "#pod_shm_size = "} {
		if !strings.Contains(string(out), key) {
			t.Errorf("commented defaults lack %q", key)
		}
	}
	f := filepath.Join(t.TempDir(), "cradle.toml")
	writeFile(t, f, string(out))
	l, err := Load(f, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Config, Default()) {
		t.Errorf("commented defaults load to %+v", l.Config)
	}
	// Uncommenting a table and a key works as the header says.
	writeFile(t, f, strings.Replace(strings.Replace(string(out), "#[registry]", "[registry]", 1), "#max_concurrent_downloads = 6", "max_concurrent_downloads = 2", 1))
	if l, err = Load(f, Overrides{}); err != nil || l.Registry.MaxConcurrentDownloads != 2 {
		t.Fatalf("uncommented key: %v %v", l, err)
	}
}

func TestDiffNamesChangedKeysAndHandlers(t *testing.T) {
	a, b := Default(), Default()
	if d := Diff(a, b); len(d) != 0 {
		t.Fatalf("diff of equal configs: %v", d)
	}
	b.LogLevel = "debug"
	b.Registry.StallTimeout = 0
	b.Runtime.Handlers = map[string]HandlerConfig{"runc": {Path: "runc", Type: "oci"}, "kata.v2": {Path: "/opt/kata", Type: "oci"}}
	b.CNI.PluginDirs = []string{"/x"}
	want := []string{"cni.plugin_dirs", "log_level", "registry.stall_timeout", "runtime.handlers.kata.v2"}
	if d := Diff(a, b); !reflect.DeepEqual(d, want) {
		t.Errorf("Diff = %v, want %v", d, want)
	}
	h := b.Runtime.Handlers["kata.v2"]
	h.Path = "/opt/kata2"
	c := b
	c.Runtime.Handlers = map[string]HandlerConfig{"runc": b.Runtime.Handlers["runc"], "kata.v2": h}
	if d := Diff(b, c); !reflect.DeepEqual(d, []string{"runtime.handlers.kata.v2.path"}) {
		t.Errorf("changed handler field: %v", d)
	}
}

func TestKeepRestartOnly(t *testing.T) {
	cur, next := Default(), Default()
	next.Root, next.Socket, next.Stream.Port, next.Stream.Address = "/x", "/x/s.sock", 99, "0.0.0.0"
	next.Runtime.CgroupDriver, next.LogFormat, next.CNI.ConfDir = "systemd", "json", "/cni"
	next.LogLevel, next.Stream.URLTTL = "debug", Duration(5e9)
	next.NRI.Enable, next.CDI.SpecDirs = false, []string{"/cdi"}
	keys := KeepRestartOnly(&cur, &next)
	want := []string{"cdi.spec_dirs", "cni.conf_dir", "log_format", "nri.enable", "root", "runtime.cgroup_driver", "socket", "stream.address", "stream.port"}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("restart-only keys = %v, want %v", keys, want)
	}
	if d := Diff(cur, next); !reflect.DeepEqual(d, []string{"log_level", "stream.url_ttl"}) {
		t.Errorf("after keeping them, the diff is %v", d)
	}
}

// A value that parses but does not validate is reported at its line, or
// at its table's when the key is missing.
func TestValidationErrorsNameTheLine(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cradle.toml")
	writeFile(t, f, "log_level = \"info\"\n\n[stream]\naddress = \"127.0.0.1\"\nurl_ttl = \"5m\"\n[runtime.handlers.gvisor]\ntype = \"oci\"\n")
	_, err := Load(f, Overrides{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{f + ":5: key \"stream.url_ttl\"", f + ":6: key \"runtime.handlers.gvisor.path\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	writeFile(t, f, "log_format = \"xml\"\n")
	if _, err := Load(f, Overrides{}); err == nil || !strings.Contains(err.Error(), f+":1: key \"log_format\": must be text or json") {
		t.Errorf("bad log_format: %v", err)
	}
}
