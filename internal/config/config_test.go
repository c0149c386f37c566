package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultsNeedNoFile(t *testing.T) {
	l, err := Load(filepath.Join(t.TempDir(), "absent.toml"), Overrides{})
	if err == nil {
		t.Fatal("a named config file that is missing must fail")
	}
	// The built-in defaults validate on their own.
	l = &Loaded{Config: Default(), origin: map[string]string{}}
	if err := l.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if l.Socket != DefaultSocket || l.Root != DefaultRoot || l.Runtime.CgroupDriver != "cgroupfs" {
		t.Fatalf("unexpected defaults: %+v", l.Config)
	}
}

func TestFileDropInsAndOverrides(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cradle.toml")
	writeFile(t, main, `
root = "/srv/cradle"
log_level = "debug"
[registry]
config_path = "/srv/certs.d"
stall_timeout = "90s"
[runtime.handlers.crun]
path = "/usr/bin/crun"
`)
	writeFile(t, filepath.Join(dir, "cradle.d", "20-b.toml"), `log_level = "warn"`)
	writeFile(t, filepath.Join(dir, "cradle.d", "10-a.toml"), `log_level = "error"
[cni]
plugin_dirs = ["/x/bin"]`)
	writeFile(t, filepath.Join(dir, "cradle.d", "ignored.conf"), `nonsense`)

	l, err := Load(main, Overrides{Socket: "/tmp/x.sock"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Root != "/srv/cradle" || l.Registry.ConfigPath != "/srv/certs.d" {
		t.Errorf("file values not applied: %+v", l.Config)
	}
	if l.LogLevel != "warn" {
		t.Errorf("drop-ins must apply in lexical order, last wins: log_level=%q", l.LogLevel)
	}
	if got := l.Registry.StallTimeout.Std(); got != 90*time.Second {
		t.Errorf("stall_timeout = %v", got)
	}
	if len(l.CNI.PluginDirs) != 1 || l.CNI.PluginDirs[0] != "/x/bin" {
		t.Errorf("plugin_dirs = %v", l.CNI.PluginDirs)
	}
	if _, ok := l.Runtime.Handlers["runc"]; !ok {
		t.Error("adding a handler must keep the built-in runc handler")
	}
	if h := l.Runtime.Handlers["crun"]; h.Path != "/usr/bin/crun" || h.Type != "oci" {
		t.Errorf("crun handler = %+v", h)
	}
	if l.Socket != "/tmp/x.sock" || l.Origin("socket") != "flag --socket" {
		t.Errorf("override: socket=%q origin=%q", l.Socket, l.Origin("socket"))
	}
	if got := l.Origin("log_level"); got != filepath.Join(dir, "cradle.d", "20-b.toml") {
		t.Errorf("origin of log_level = %q", got)
	}
	if len(l.Files) != 3 {
		t.Errorf("files read = %v", l.Files)
	}
}

func TestBadConfigNamesFileKeyAndReason(t *testing.T) {
	cases := []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "[cni]\nconf_dirs = \"/x\"\n", []string{"unknown key", "cni.conf_dirs", ":2:"}},
		{"unknown table", "[nope]\na = 1\n", []string{"unknown key", "nope"}},
		{"wrong type", "[stream]\nport = \"eighty\"\n", []string{"stream.port"}},
		{"bad duration", "[registry]\nstall_timeout = \"soon\"\n", []string{"registry.stall_timeout", "not a duration"}},
		{"bad driver", "[runtime]\ncgroup_driver = \"upstart\"\n", []string{"runtime.cgroup_driver", "cgroupfs or systemd", "upstart"}},
		{"relative root", "root = \"var/lib\"\n", []string{`"root"`, "absolute"}},
		{"bad level", "log_level = \"loud\"\n", []string{"log_level"}},
		{"unknown default handler", "[runtime]\ndefault_handler = \"kata\"\n", []string{"runtime.default_handler", "kata"}},
		{"handler without path", "[runtime.handlers.gvisor]\ntype = \"oci\"\n", []string{"runtime.handlers.gvisor.path"}},
		{"tiny shm", "[runtime]\npod_shm_size = 4096\n", []string{"runtime.pod_shm_size"}},
		{"bad stream address", "[stream]\naddress = \"localhost:1\"\n", []string{"stream.address"}},
		{"url_ttl beyond the library's minute", "[stream]\nurl_ttl = \"2m\"\n", []string{"stream.url_ttl", "at most 1m"}},
		{"zero url_ttl", "[stream]\nurl_ttl = \"0s\"\n", []string{"stream.url_ttl", "positive"}},
		{"syntax", "root = \n", []string{"cradle.toml:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "cradle.toml")
			writeFile(t, f, tc.content)
			_, err := Load(f, Overrides{})
			if err == nil {
				t.Fatal("expected an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, f) {
				t.Errorf("error does not name the file: %s", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	c := Default()
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"root =", "[registry]", "config_path =", "[runtime.handlers.runc]", "stall_timeout = '1m0s'"} {
		if !strings.Contains(string(out), key) {
			t.Errorf("output lacks %q:\n%s", key, out)
		}
	}
	var back Config
	dec := toml.NewDecoder(strings.NewReader(string(out)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("printed config does not load back: %v\n%s", err, out)
	}
	if back.Registry.StallTimeout != c.Registry.StallTimeout || back.Runtime.Handlers["runc"].Path != "runc" {
		t.Errorf("round trip lost values: %+v", back)
	}
}
