package image

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestParseHostsFile(t *testing.T) {
	const dir = "/etc/cradle/certs.d/reg.example.com"
	tests := []struct {
		name     string
		registry string
		file     string
		want     []hostSpec
	}{
		{
			name: "no file, docker hub", registry: "docker.io",
			want: []hostSpec{{scheme: "https", host: "registry-1.docker.io", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "no file, plain registry", registry: "reg.example.com:5000",
			want: []hostSpec{{scheme: "https", host: "reg.example.com:5000", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "no file, loopback is plain http", registry: "127.0.0.1:5000",
			want: []hostSpec{{scheme: "http", host: "127.0.0.1:5000", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "no file, localhost is plain http", registry: "localhost",
			want: []hostSpec{{scheme: "http", host: "localhost", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "no file, ipv6 loopback", registry: "[::1]:5000",
			want: []hostSpec{{scheme: "http", host: "[::1]:5000", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "mirrors in file order, server last", registry: "docker.io",
			file: `
server = "https://registry-1.docker.io"

[host."https://z-mirror.example.com"]
  capabilities = ["pull", "resolve"]

[host."http://a-mirror.example.com:5000"]
  capabilities = ["pull"]

[host."https://m-mirror.example.com"]
`,
			want: []hostSpec{
				{scheme: "https", host: "z-mirror.example.com", path: "/v2", caps: CapPull | CapResolve},
				{scheme: "http", host: "a-mirror.example.com:5000", path: "/v2", caps: CapPull},
				{scheme: "https", host: "m-mirror.example.com", path: "/v2", caps: capAll},
				{scheme: "https", host: "registry-1.docker.io", path: "/v2", caps: capAll, upstream: true},
			},
		},
		{
			name: "path prefix and override_path", registry: "docker.io",
			file: `
[host."https://proxy.example.com/dockerhub"]
[host."https://harbor.example.com/v2/proxy"]
  override_path = true
[host."https://plain.example.com/v2"]
`,
			want: []hostSpec{
				{scheme: "https", host: "proxy.example.com", path: "/dockerhub/v2", caps: capAll},
				{scheme: "https", host: "harbor.example.com", path: "/v2/proxy", caps: capAll},
				{scheme: "https", host: "plain.example.com", path: "/v2", caps: capAll},
				{scheme: "https", host: "registry-1.docker.io", path: "/v2", caps: capAll, upstream: true},
			},
		},
		{
			name: "tls settings, relative paths resolve against the host dir", registry: "reg.example.com",
			file: `
server = "https://reg.example.com"
ca = "ca.crt"
client = [["client.cert", "/abs/client.key"]]
skip_verify = false
[header]
  x-team = "infra"

[host."https://mirror.example.com"]
  ca = ["/etc/ssl/a.pem", "b.pem"]
  client = "combined.pem"
  skip_verify = true
  [host."https://mirror.example.com".header]
    x-token = ["a", "b"]
`,
			want: []hostSpec{
				{
					scheme: "https", host: "mirror.example.com", path: "/v2", caps: capAll,
					caFiles:     []string{"/etc/ssl/a.pem", dir + "/b.pem"},
					clientPairs: [][2]string{{dir + "/combined.pem", ""}},
					skipVerify:  true,
					header:      http.Header{"X-Token": {"a", "b"}},
				},
				{
					scheme: "https", host: "reg.example.com", path: "/v2", caps: capAll, upstream: true,
					caFiles:     []string{dir + "/ca.crt"},
					clientPairs: [][2]string{{dir + "/client.cert", "/abs/client.key"}},
					header:      http.Header{"X-Team": {"infra"}},
				},
			},
		},
		{
			name: "client as a list of single files", registry: "reg.example.com",
			file: `client = ["/a.pem", ["/b.cert", "/b.key"]]`,
			want: []hostSpec{{
				scheme: "https", host: "reg.example.com", path: "/v2", caps: capAll, upstream: true,
				clientPairs: [][2]string{{"/a.pem", ""}, {"/b.cert", "/b.key"}},
			}},
		},
		{
			name: "server without scheme is https", registry: "reg.example.com",
			file: `server = "other.example.com:8443"`,
			want: []hostSpec{{scheme: "https", host: "other.example.com:8443", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "dotted and inline host keys keep their order", registry: "reg.example.com",
			file: `
[host]
"https://b.example.com".capabilities = ["pull"]
"https://a.example.com" = { capabilities = ["resolve"] }
`,
			want: []hostSpec{
				{scheme: "https", host: "b.example.com", path: "/v2", caps: CapPull},
				{scheme: "https", host: "a.example.com", path: "/v2", caps: CapResolve},
				{scheme: "https", host: "reg.example.com", path: "/v2", caps: capAll, upstream: true},
			},
		},
		{
			name: "a mirror naming the server is asked once", registry: "registry.k8s.io",
			file: `
server = "http://127.0.0.1:5000"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
`,
			want: []hostSpec{{scheme: "http", host: "127.0.0.1:5000", path: "/v2", caps: capAll, upstream: true}},
		},
		{
			name: "unknown keys are ignored", registry: "reg.example.com",
			file: `
dial_timeout = "3s"
[host."https://m.example.com"]
  something_new = true
`,
			want: []hostSpec{
				{scheme: "https", host: "m.example.com", path: "/v2", caps: capAll},
				{scheme: "https", host: "reg.example.com", path: "/v2", caps: capAll, upstream: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data []byte
			if tt.file != "" {
				data = []byte(tt.file)
			}
			got, err := parseHostsFile(tt.registry, dir, data)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseHostsFileErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"toml syntax", "server = \n", "line 1"},
		{"bad capability", `[host."https://m"]` + "\ncapabilities = [\"fetch\"]", `unknown capability "fetch"`},
		{"bad scheme", `[host."ftp://m"]`, `neither http nor https`},
		{"ca not a string", `ca = 5`, "ca: want a string"},
		{"ca list with a number", `ca = ["a", 1]`, "ca: want a string"},
		{"client triple", `client = [["a", "b", "c"]]`, "client: want"},
		{"header number", "[header]\nx = 1", "header x"},
		{"server with query", `server = "https://r.example.com/?x=1"`, "only a scheme"},
		{"wrong type", `skip_verify = "yes"`, "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHostsFile("r.example.com", "/d", []byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func hostURLs(hs []RegistryHost) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.URL(""))
	}
	return out
}

func TestHostsLookup(t *testing.T) {
	dir := t.TempDir()
	h := NewHosts(dir)
	defer h.Close()

	// No directory at all: defaults.
	hs, err := h.Lookup("reg.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := hostURLs(hs); !reflect.DeepEqual(got, []string{"https://reg.example.com/v2"}) {
		t.Fatalf("defaults: %v", got)
	}

	// _default applies to registries without a directory of their own.
	writeFile(t, filepath.Join(dir, "_default", "hosts.toml"), `[host."http://cache.local:5000"]`)
	hs, err = h.Lookup("reg.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := hostURLs(hs); !reflect.DeepEqual(got, []string{"http://cache.local:5000/v2", "https://reg.example.com/v2"}) {
		t.Fatalf("_default: %v", got)
	}

	// The registry's own directory (host:port form) wins over _default, and
	// is picked up without a restart.
	writeFile(t, filepath.Join(dir, "reg.example.com", "hosts.toml"), `server = "http://reg.example.com:8080"`)
	hs, err = h.Lookup("reg.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got := hostURLs(hs); !reflect.DeepEqual(got, []string{"http://reg.example.com:8080/v2"}) {
		t.Fatalf("own dir: %v", got)
	}
	writeFile(t, filepath.Join(dir, "127.0.0.1:5000", "hosts.toml"), `[host."http://127.0.0.1:6000/pfx"]`)
	hs, err = h.Lookup("127.0.0.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	if got := hostURLs(hs); !reflect.DeepEqual(got, []string{"http://127.0.0.1:6000/pfx/v2", "http://127.0.0.1:5000/v2"}) {
		t.Fatalf("host:port dir: %v", got)
	}

	// An edit is seen at the next lookup; a broken file is a clear error
	// naming it.
	file := filepath.Join(dir, "reg.example.com", "hosts.toml")
	writeFile(t, file, "server = [\n")
	future := time.Now().Add(time.Hour)
	os.Chtimes(file, future, future)
	_, err = h.Lookup("reg.example.com")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), file) {
		t.Fatalf("broken file: %v, want ErrFailedPrecondition naming %s", err, file)
	}
}

func TestHostsLookupCaches(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "r.example.com", "hosts.toml"), `[host."https://m.example.com"]`)
	h := NewHosts(dir)
	defer h.Close()
	a, err := h.Lookup("r.example.com")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Lookup("r.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("an unchanged config was parsed again")
	}
}

func TestHostsLookupTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testPKI(t)
	hd := filepath.Join(dir, "r.example.com")
	writeFile(t, filepath.Join(hd, "ca.pem"), ca)
	writeFile(t, filepath.Join(hd, "me.pem"), cert+key)
	writeFile(t, filepath.Join(hd, "hosts.toml"), `
ca = "ca.pem"
client = "me.pem"
[host."https://m.example.com"]
  skip_verify = true
[host."https://n.example.com"]
  ca = "missing.pem"
`)
	h := NewHosts(dir)
	defer h.Close()
	_, err := h.Lookup("r.example.com")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("missing CA file: %v", err)
	}
	writeFile(t, filepath.Join(hd, "hosts.toml"), `
ca = "ca.pem"
client = "me.pem"
[host."https://m.example.com"]
  skip_verify = true
`)
	hs, err := h.Lookup("r.example.com")
	if err != nil {
		t.Fatal(err)
	}
	m := hs[0].Client.Transport.(*http.Transport).TLSClientConfig
	if m == nil || !m.InsecureSkipVerify {
		t.Errorf("skip_verify not applied: %+v", m)
	}
	up := hs[1].Client.Transport.(*http.Transport).TLSClientConfig
	if up == nil || up.RootCAs == nil || len(up.Certificates) != 1 || up.InsecureSkipVerify {
		t.Errorf("ca/client not applied to the server: %+v", up)
	}

	// A file that is not PEM is refused by name.
	writeFile(t, filepath.Join(hd, "ca.pem"), "garbage")
	future := time.Now().Add(time.Hour)
	os.Chtimes(filepath.Join(hd, "ca.pem"), future, future)
	if _, err := h.Lookup("r.example.com"); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Fatalf("garbage CA accepted after an edit: %v", err)
	}
}

func TestHostsLookupCertsDir(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testPKI(t)
	hd := filepath.Join(dir, "r.example.com:5000")
	writeFile(t, filepath.Join(hd, "ca.crt"), ca)
	writeFile(t, filepath.Join(hd, "client.cert"), cert)
	writeFile(t, filepath.Join(hd, "client.key"), key)
	h := NewHosts(dir)
	defer h.Close()
	hs, err := h.Lookup("r.example.com:5000")
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || !hs[0].Upstream || hs[0].Scheme != "https" {
		t.Fatalf("hosts: %+v", hs)
	}
	cfg := hs[0].Client.Transport.(*http.Transport).TLSClientConfig
	if cfg == nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("certs.d files not used: %+v", cfg)
	}

	os.Remove(filepath.Join(hd, "client.key"))
	if _, err := h.Lookup("r.example.com:5000"); err == nil || !strings.Contains(err.Error(), "client.key") {
		t.Fatalf("a .cert without its .key: %v", err)
	}
}

func TestHostsLookupRejectsPathNames(t *testing.T) {
	h := NewHosts(t.TempDir())
	for _, r := range []string{"", "..", "a/b", `a\b`} {
		if _, err := h.Lookup(r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Lookup(%q) = %v", r, err)
		}
	}
}
