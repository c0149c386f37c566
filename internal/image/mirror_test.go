package image

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

// prefixProxy serves reg under /prefix, the way a pull-through cache mounts
// one upstream registry under a path, and records the ns query parameter.
type prefixProxy struct {
	*httptest.Server
	mu  sync.Mutex
	nss []string
}

func newPrefixProxy(t *testing.T, prefix string, reg http.Handler) *prefixProxy {
	p := &prefixProxy{}
	strip := http.StripPrefix(prefix, reg)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p.mu.Lock()
		p.nss = append(p.nss, req.URL.Query().Get("ns"))
		p.mu.Unlock()
		strip.ServeHTTP(w, req)
	}))
	t.Cleanup(p.Close)
	return p
}

func deadHost(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close()
	return host
}

func TestMirrorWithPathPrefixAfterFailingMirrors(t *testing.T) {
	e := newEnv(t)
	upstream := testkit.NewRegistry(t)
	mirror := testkit.NewRegistry(t)
	empty := testkit.NewRegistry(t)
	src := smallImage(t, "mirrored", testkit.Gzip)
	upstream.MustPush(t, "library/app:v1", src)
	mirror.MustPush(t, "library/app:v1", src)
	proxy := newPrefixProxy(t, "/cache", mirror)
	dead := deadHost(t)

	e.hostsFile(upstream.Host, fmt.Sprintf(`
[host."http://%s"]
[host."http://%s"]
  capabilities = ["pull", "resolve"]
[host."%s/cache"]
  capabilities = ["pull", "resolve"]
`, dead, empty.Host, proxy.URL))

	img := e.pull(upstream.Ref("library/app:v1"))
	if img.RepoTags[0] != upstream.Host+"/library/app:v1" {
		t.Errorf("the record names the mirror: %v", img.RepoTags)
	}
	if n := empty.Requests("/v2/library/app/manifests/v1"); n != 1 {
		t.Errorf("the 404 mirror saw %d manifest requests", n)
	}
	if n := mirror.Requests("/v2/library/app/manifests/v1"); n != 1 {
		t.Errorf("the prefixed mirror saw %d manifest requests", n)
	}
	if n := mirror.Requests(layerDigests(t, src)[0].Hex); n != 1 {
		t.Errorf("the layer came from the mirror %d times", n)
	}
	if n := upstream.Requests("/v2/"); n != 0 {
		t.Errorf("the upstream was asked %d times although a mirror had everything", n)
	}
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	for _, ns := range proxy.nss {
		if ns != upstream.Host {
			t.Errorf("mirror request with ns=%q", ns)
		}
	}
}

func TestMirrorFallsBackToUpstream(t *testing.T) {
	e := newEnv(t)
	upstream := testkit.NewRegistry(t)
	locked := testkit.NewRegistry(t, testkit.WithBasicAuth("m", "m"))
	broken := testkit.NewRegistry(t)
	src := smallImage(t, "up", testkit.Gzip)
	upstream.MustPush(t, "app:latest", src)
	broken.MustPush(t, "app:latest", src)
	broken.SetFault(testkit.FailStatus("/", http.StatusBadGateway))
	e.hostsFile(upstream.Host, fmt.Sprintf(`
[host."http://%s"]
[host."http://%s"]
`, locked.Host, broken.Host))
	e.pull(upstream.Ref("app"))
	if locked.Requests("/manifests/") == 0 || broken.Requests("/manifests/") == 0 {
		t.Error("mirrors were not tried")
	}
	if upstream.Requests("/manifests/") != 1 {
		t.Error("upstream not used")
	}

	// When no host has it, the refusal is the most telling answer, and the
	// message mentions every host.
	_, err := e.svc.Pull(context.Background(), upstream.Ref("missing"), nil, nil)
	wantKind(t, err, errdefs.ErrUnauthenticated)
	for _, h := range []string{locked.Host, broken.Host, upstream.Host} {
		if !strings.Contains(err.Error(), h) {
			t.Errorf("message %q does not mention %s", err, h)
		}
	}
}

// A pull-only mirror serves blobs; tags are resolved upstream.
func TestMirrorCapabilities(t *testing.T) {
	e := newEnv(t)
	upstream := testkit.NewRegistry(t)
	mirror := testkit.NewRegistry(t)
	src := smallImage(t, "caps", testkit.Gzip)
	upstream.MustPush(t, "app:latest", src)
	mirror.MustPush(t, "app:latest", src)
	e.hostsFile(upstream.Host, fmt.Sprintf("[host.\"http://%s\"]\n  capabilities = [\"pull\"]\n", mirror.Host))
	e.pull(upstream.Ref("app"))
	if n := mirror.Requests("/manifests/latest"); n != 0 {
		t.Errorf("pull-only mirror asked to resolve a tag %d times", n)
	}
	if n := upstream.Requests("/manifests/latest"); n != 1 {
		t.Errorf("upstream resolved %d times", n)
	}
	if n := mirror.Requests(layerDigests(t, src)[0].Hex); n != 1 {
		t.Errorf("mirror served the layer %d times", n)
	}
	if n := upstream.Requests("/blobs/"); n != 0 {
		t.Errorf("upstream served %d blobs", n)
	}

	// A configuration that leaves no host able to resolve says so.
	e.hostsFile(upstream.Host, fmt.Sprintf("capabilities = [\"pull\"]\n[host.\"http://%s\"]\n  capabilities = [\"pull\"]\n", mirror.Host))
	_, err := e.svc.Pull(context.Background(), upstream.Ref("app:other"), nil, nil)
	wantKind(t, err, errdefs.ErrFailedPrecondition)
}

// Credentials with a server_address go to that host only.
func TestMirrorCredentialsByServerAddress(t *testing.T) {
	e := newEnv(t)
	upstream := testkit.NewRegistry(t, testkit.WithBasicAuth("up", "pw"))
	mirror := testkit.NewRegistry(t, testkit.WithBasicAuth("m", "mpw"))
	src := smallImage(t, "creds", testkit.Gzip)
	upstream.MustPush(t, "app:latest", src)
	mirror.MustPush(t, "app:latest", src)
	e.hostsFile(upstream.Host, fmt.Sprintf("[host.\"http://%s\"]\n", mirror.Host))

	if _, err := e.svc.Pull(context.Background(), upstream.Ref("app"), &Auth{Username: "m", Password: "mpw", ServerAddress: mirror.Host}, nil); err != nil {
		t.Fatal(err)
	}
	if upstream.Requests("/v2/") != 0 {
		t.Error("upstream asked although the mirror had the image")
	}
	// Upstream credentials are not sent to the mirror, which refuses; the
	// upstream then serves.
	mirror.ResetRequests()
	if _, err := e.svc.Pull(context.Background(), upstream.Ref("app"), &Auth{Username: "up", Password: "pw", ServerAddress: upstream.Host}, nil); err != nil {
		t.Fatal(err)
	}
	// The mirror's 401 is final (nothing to answer it with); the upstream's
	// Basic challenge is answered.
	if mirror.Requests("/manifests/") != 1 || upstream.Requests("/manifests/") != 2 {
		t.Errorf("mirror %d, upstream %d manifest requests", mirror.Requests("/manifests/"), upstream.Requests("/manifests/"))
	}
}

func TestTLSRegistryWithCAFromHostsFile(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t, testkit.WithTLS())
	r.MustPush(t, "app:latest", smallImage(t, "tls", testkit.Gzip))

	// Loopback defaults to plain HTTP, which a TLS registry refuses.
	if _, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil); err == nil {
		t.Fatal("plain HTTP to a TLS registry succeeded")
	}
	// HTTPS without the CA: the certificate is not trusted.
	dir := e.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\n", r.Host))
	_, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrUnavailable)
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("message %q does not mention the certificate", err)
	}
	writeFile(t, filepath.Join(dir, "registry-ca.pem"), string(r.CACertPEM()))
	e.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\nca = \"registry-ca.pem\"\n", r.Host))
	e.pull(r.Ref("app"))

	e2 := newEnv(t)
	e2.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\nskip_verify = true\n", r.Host))
	e2.pull(r.Ref("app"))
}

func TestTLSClientCertificate(t *testing.T) {
	r := testkit.NewRegistry(t, testkit.WithClientCert())
	r.MustPush(t, "app:latest", smallImage(t, "mtls", testkit.Gzip))

	// hosts.toml with explicit ca and client pair.
	e := newEnv(t)
	dir := e.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.pem\"\n", r.Host))
	writeFile(t, filepath.Join(dir, "ca.pem"), string(r.CACertPEM()))
	if _, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil); err == nil {
		t.Fatal("pull without a client certificate succeeded")
	}
	writeFile(t, filepath.Join(dir, "c.pem"), string(r.ClientCertPEM()))
	writeFile(t, filepath.Join(dir, "k.pem"), string(r.ClientKeyPEM()))
	e.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\nca = \"ca.pem\"\nclient = [[\"c.pem\", \"k.pem\"]]\n", r.Host))
	e.pull(r.Ref("app"))

	// certs.d style: only files next to a hosts.toml naming the server.
	e2 := newEnv(t)
	dir = e2.hostsFile(r.Host, fmt.Sprintf("server = \"https://%s\"\n", r.Host))
	writeFile(t, filepath.Join(dir, "ca.crt"), string(r.CACertPEM()))
	writeFile(t, filepath.Join(dir, "client.cert"), string(r.ClientCertPEM()))
	writeFile(t, filepath.Join(dir, "client.key"), string(r.ClientKeyPEM()))
	e2.pull(r.Ref("app"))
}
