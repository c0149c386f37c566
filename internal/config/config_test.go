package config

import (
	"os"
	"path/filepath"
	"reflect"
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
	dir := t.TempDir()
	// No file anywhere: the built-in defaults, validated, and no file read.
	l, err := load("", filepath.Join(dir, "cradle.toml"), Overrides{})
	if err != nil {
		t.Fatalf("start-up without any config file: %v", err)
	}
	if !reflect.DeepEqual(l.Config, Default()) || len(l.Files) != 0 {
		t.Fatalf("effective config without a file = %+v (files %v), want the defaults", l.Config, l.Files)
	}
	// The paths the issue and the tools around cradle rely on, literally.
	if l.Socket != "/run/cradle/cradle.sock" || l.Root != "/var/lib/cradle" || l.State != "/run/cradle" ||
		l.Registry.ConfigPath != "/etc/cradle/certs.d" || l.CNI.ConfDir != "/etc/cni/net.d" ||
		l.Runtime.CgroupDriver != "cgroupfs" || l.Runtime.DefaultHandler != "runc" ||
		!reflect.DeepEqual(l.CDI.SpecDirs, []string{"/etc/cdi", "/var/run/cdi"}) ||
		!l.NRI.Enable || l.NRI.SocketPath != "/var/run/nri/nri.sock" || l.NRI.PluginPath != "/opt/nri/plugins" ||
		l.NRI.PluginConfigPath != "/etc/nri/conf.d" || l.NRI.PluginRegistrationTimeout.Std() != 5*time.Second ||
		l.NRI.PluginRequestTimeout.Std() != 2*time.Second || l.NRI.DisableConnections {
		t.Fatalf("unexpected defaults: %+v", l.Config)
	}
	if DefaultFile != "/etc/cradle/cradle.toml" || DropInDir(DefaultFile) != "/etc/cradle/cradle.d" {
		t.Fatalf("default config file %s, drop-ins %s", DefaultFile, DropInDir(DefaultFile))
	}
	if got := l.Origin("socket"); got != "built-in default" {
		t.Errorf("origin of an unset key = %q", got)
	}

	// Drop-ins apply even when the main file is absent.
	writeFile(t, filepath.Join(dir, "cradle.d", "50-level.toml"), "log_level = \"debug\"\n")
	l, err = load("", filepath.Join(dir, "cradle.toml"), Overrides{})
	if err != nil || l.LogLevel != "debug" {
		t.Fatalf("drop-in without a main file: level=%v err=%v", l, err)
	}

	// A file named explicitly must exist.
	if _, err := Load(filepath.Join(dir, "absent.toml"), Overrides{}); err == nil || !strings.Contains(err.Error(), "absent.toml") {
		t.Fatalf("a named config file that is missing: err = %v", err)
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
[runtime.handlers.runsc]
path = "/usr/bin/runsc"
runtime_args = ["--network=host", "--ignore-cgroups"]
sandboxed = true
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
	if h := l.Runtime.Handlers["runsc"]; !h.Sandboxed || len(h.RuntimeArgs) != 2 || h.RuntimeArgs[1] != "--ignore-cgroups" {
		t.Errorf("runsc handler = %+v", h)
	}
	if h := l.Runtime.Handlers["crun"]; h.Path != "/usr/bin/crun" || h.Type != "oci" || h.Sandboxed || h.RuntimeArgs != nil {
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
		{"zero cni call_timeout", "[cni]\ncall_timeout = \"0s\"\n", []string{"cni.call_timeout", "positive"}},
		{"call_timeout beyond a create's budget", "[runtime.handlers.runc]\npath = \"runc\"\ncall_timeout = \"5m\"\n", []string{"runtime.handlers.runc.call_timeout", "4m"}},
		{"cni call_timeout beyond a Run's budget", "[cni]\ncall_timeout = \"10m\"\n", []string{"cni.call_timeout", "at most 4m"}},
		{"negative call_timeout", "[runtime.handlers.runc]\npath = \"runc\"\ncall_timeout = \"-1s\"\n", []string{"runtime.handlers.runc.call_timeout", "between 0"}},
		{"runtime_args not a flag", "[runtime.handlers.runsc]\npath = \"runsc\"\nruntime_args = [\"--network=host\", \"host\"]\n", []string{"runtime.handlers.runsc.runtime_args[1]", "must be a flag"}},
		{"tiny shm", "[runtime]\npod_shm_size = 4096\n", []string{"runtime.pod_shm_size"}},
		{"bad stream address", "[stream]\naddress = \"localhost:1\"\n", []string{"stream.address"}},
		{"url_ttl beyond the library's minute", "[stream]\nurl_ttl = \"2m\"\n", []string{"stream.url_ttl", "at most 1m"}},
		{"zero url_ttl", "[stream]\nurl_ttl = \"0s\"\n", []string{"stream.url_ttl", "positive"}},
		{"metrics address without port", "[metrics]\naddress = \"127.0.0.1\"\n", []string{"metrics.address", "host:port"}},
		{"metrics cert without key", "[metrics]\naddress = \"127.0.0.1:9090\"\ntls_cert = \"/c.pem\"\n", []string{"metrics.tls_cert", "together"}},
		{"metrics tls without address", "[metrics]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n", []string{"metrics.tls_cert", "metrics are off"}},
		{"tracing endpoint without port", "[tracing]\nendpoint = \"collector\"\n", []string{"tracing.endpoint"}},
		{"tracing endpoint URL without port", "[tracing]\nendpoint = \"https://collector\"\n", []string{"tracing.endpoint", "no port"}},
		{"sampling above a million", "[tracing]\nsampling_rate_per_million = 1000001\n", []string{"tracing.sampling_rate_per_million", "1000000"}},
		{"negative sampling", "[tracing]\nsampling_rate_per_million = -1\n", []string{"tracing.sampling_rate_per_million"}},
		{"syntax", "root = \n", []string{"cradle.toml:1"}},
		{"relative cdi dir", "[cdi]\nspec_dirs = [\"etc/cdi\"]\n", []string{"cdi.spec_dirs", "absolute"}},
		{"zero nri request timeout", "[nri]\nplugin_request_timeout = \"0s\"\n", []string{"nri.plugin_request_timeout", "positive"}},
		{"relative nri socket", "[nri]\nsocket_path = \"nri.sock\"\n", []string{"nri.socket_path", "absolute"}},
		{"socket path too long", "socket = \"/run/" + strings.Repeat("s", 103) + "\"\n", []string{`"socket"`, "108 bytes long", "at most 107"}},
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
	for _, key := range []string{"root =", "[registry]", "config_path =", "[runtime.handlers.runc]", "stall_timeout = '1m0s'",
		"[metrics]\n", "address = ''", "[tracing]", "sampling_rate_per_million = 0"} {
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

// A drop-in's mistakes are reported against the drop-in, not the main file,
// whether the decoder or the validation finds them.
func TestDropInErrorsNameTheDropIn(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"unknown key", "[runtime]\ncgroup_drivr = \"systemd\"\n", []string{"unknown key", "runtime.cgroup_drivr", ":2:"}},
		{"wrong type", "[cni]\nplugin_dirs = \"/bin\"\n", []string{"cni.plugin_dirs"}},
		{"bad value", "[runtime]\ncgroup_driver = \"upstart\"\n", []string{"runtime.cgroup_driver", "cgroupfs or systemd"}},
		{"syntax", "[runtime\n", []string{":1:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			main := filepath.Join(dir, "cradle.toml")
			writeFile(t, main, "log_level = \"info\"\n")
			writeFile(t, filepath.Join(dir, "cradle.d", "10-good.toml"), "log_level = \"warn\"\n")
			bad := filepath.Join(dir, "cradle.d", "20-bad.toml")
			writeFile(t, bad, tc.content)
			_, err := Load(main, Overrides{})
			if err == nil {
				t.Fatal("a bad drop-in was accepted")
			}
			msg := err.Error()
			for _, w := range append([]string{bad}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, main) || strings.Contains(msg, "10-good.toml") {
				t.Errorf("error blames a file that is fine: %s", msg)
			}
		})
	}
}

// Each flag beats the file and every drop-in, and is named as the origin.
func TestEveryFlagOverridesTheFiles(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cradle.toml")
	writeFile(t, main, "root = \"/file/root\"\nstate = \"/file/state\"\nsocket = \"/file/s.sock\"\nlog_level = \"error\"\n")
	writeFile(t, filepath.Join(dir, "cradle.d", "99.toml"), "root = \"/dropin/root\"\nsocket = \"/dropin/s.sock\"\n")
	ov := Overrides{Root: "/flag/root", State: "/flag/state", Socket: "/flag/s.sock", LogLevel: "debug"}
	l, err := Load(main, ov)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, got, want, flag string }{
		{"root", l.Root, ov.Root, "--root"},
		{"state", l.State, ov.State, "--state"},
		{"socket", l.Socket, ov.Socket, "--socket"},
		{"log_level", l.LogLevel, ov.LogLevel, "--log-level"},
	} {
		if tc.got != tc.want || l.Origin(tc.key) != "flag "+tc.flag {
			t.Errorf("%s = %q from %q, want %q from flag %s", tc.key, tc.got, l.Origin(tc.key), tc.want, tc.flag)
		}
	}
	// Without flags the file values stand (the drop-in's where it sets them).
	l, err = Load(main, Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Root != "/dropin/root" || l.State != "/file/state" || l.Socket != "/dropin/s.sock" || l.LogLevel != "error" {
		t.Errorf("file values = %+v", l.Config)
	}
	// A bad flag value is reported against the flag.
	if _, err := Load(main, Overrides{State: "relative"}); err == nil || !strings.Contains(err.Error(), "flag --state") {
		t.Errorf("relative --state: %v", err)
	}
}

// What `cradle config` prints is a config file that loads back to the same
// effective configuration, and prints the same again.
func TestPrintedConfigLoadsBackUnchanged(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "cradle.toml")
	writeFile(t, main, `
[registry]
stall_timeout = "0s"
max_concurrent_downloads = 3
[cni]
plugin_dirs = ["/a", "/b"]
[stream]
port = 10010
tls_cert = "/etc/c.pem"
tls_key = "/etc/k.pem"
url_ttl = "30s"
[runtime]
default_handler = "crun"
cgroup_driver = "systemd"
[metrics]
address = "127.0.0.1:9090"
tls_cert = "/etc/m.pem"
tls_key = "/etc/mk.pem"
[tracing]
endpoint = "https://otel.example:4317"
sampling_rate_per_million = 250
[runtime.handlers.crun]
path = "/usr/bin/crun"
root = "/run/crun"
`)
	writeFile(t, filepath.Join(dir, "cradle.d", "10.toml"), "[runtime.handlers.\"kata.v2\"]\npath = \"/opt/kata\"\n")
	l, err := Load(main, Overrides{Root: "/r", State: "/s", Socket: "/s/x.sock", LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	printed := filepath.Join(t.TempDir(), "printed.toml")
	writeFile(t, printed, string(out))
	back, err := Load(printed, Overrides{})
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back.Config, l.Config) {
		t.Errorf("round trip changed the config:\n got %+v\nwant %+v", back.Config, l.Config)
	}
	again, _ := back.Marshal()
	if string(again) != string(out) {
		t.Errorf("printing the reloaded config differs:\n%s\nvs\n%s", again, out)
	}
}
