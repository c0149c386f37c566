package testkit

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func pullOpts(r *Registry, auth authn.Authenticator) []remote.Option {
	return []remote.Option{remote.WithTransport(r.Transport()), remote.WithAuth(auth), remote.WithRetryBackoff(remote.Backoff{Steps: 1})}
}

// pull fetches ref from r with ggcr and validates every digest and layer.
func pull(t *testing.T, r *Registry, ref string, auth authn.Authenticator) (v1.Image, error) {
	t.Helper()
	img, err := remote.Image(mustRef(t, r.Ref(ref)), pullOpts(r, auth)...)
	if err != nil {
		return nil, err
	}
	return img, verifyImage(img)
}

// verifyImage downloads every layer once, which checks its digest, and
// checks its DiffID against the config. (ggcr's validate.Image reads blobs
// twice and knows only gzip.)
func verifyImage(img v1.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return fmt.Errorf("%d layers, %d diffIDs", len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		blob, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		mt, _ := l.MediaType()
		var r io.Reader = bytes.NewReader(blob)
		switch {
		case strings.HasSuffix(string(mt), "gzip"):
			r, err = gzip.NewReader(r)
		case strings.HasSuffix(string(mt), "zstd"):
			r, err = zstd.NewReader(r)
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != cf.RootFS.DiffIDs[i].String() {
			return fmt.Errorf("layer %d: diffID %s, config says %s", i, got, cf.RootFS.DiffIDs[i])
		}
	}
	return nil
}

func statusOf(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

func smallImage(t *testing.T, c Compression, tag string) v1.Image {
	return MustImage(t, ImageConfig{Cmd: []string{"/hello"}, Labels: map[string]string{"tag": tag}},
		MustLayer(t, []Entry{File("hello", tag)}, c))
}

func TestPushPullImageKinds(t *testing.T) {
	r := NewRegistry(t)
	for _, tc := range []struct {
		name     string
		img      v1.Image
		manifest types.MediaType
		layer    types.MediaType
	}{
		{"oci-gzip", smallImage(t, Gzip, "a"), types.OCIManifestSchema1, types.OCILayer},
		{"oci-zstd", smallImage(t, Zstd, "b"), types.OCIManifestSchema1, types.OCILayerZStd},
		{"oci-plain", smallImage(t, Uncompressed, "c"), types.OCIManifestSchema1, types.OCIUncompressedLayer},
		{"docker", Must(NewDockerImage(ImageConfig{Cmd: []string{"sh"}}, MustLayer(t, []Entry{File("d", "d")}, Gzip))),
			types.DockerManifestSchema2, types.DockerLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			digest := r.MustPush(t, "kinds/"+tc.name+":v1", tc.img)
			if want, _ := tc.img.Digest(); digest != want {
				t.Errorf("Push returned %s, image digest is %s", digest, want)
			}
			got, err := pull(t, r, "kinds/"+tc.name+":v1", authn.Anonymous)
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if d, _ := got.Digest(); d != digest {
				t.Errorf("pulled digest %s, pushed %s", d, digest)
			}
			if mt, _ := got.MediaType(); mt != tc.manifest {
				t.Errorf("manifest type %s, want %s", mt, tc.manifest)
			}
			m, _ := got.Manifest()
			if m.Layers[0].MediaType != tc.layer {
				t.Errorf("layer type %s, want %s", m.Layers[0].MediaType, tc.layer)
			}
			// By digest too.
			if _, err := pull(t, r, "kinds/"+tc.name+"@"+digest.String(), authn.Anonymous); err != nil {
				t.Errorf("pull by digest: %v", err)
			}
		})
	}
}

func TestPushPullIndex(t *testing.T) {
	r := NewRegistry(t)
	amd := MustImage(t, ImageConfig{Architecture: "amd64"}, MustLayer(t, []Entry{File("a", "amd64")}, Gzip))
	arm := MustImage(t, ImageConfig{Architecture: "arm64", Variant: "v8"}, MustLayer(t, []Entry{File("a", "arm64")}, Gzip))
	for _, tc := range []struct {
		name string
		idx  v1.ImageIndex
		mt   types.MediaType
	}{
		{"oci", MustIndex(t, amd, arm), types.OCIImageIndex},
		{"docker", Must(NewDockerManifestList(amd, arm)), types.DockerManifestList},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.MustPushIndex(t, "multi:"+tc.name, tc.idx)
			ref := mustRef(t, r.Ref("multi:"+tc.name))
			idx, err := remote.Index(ref, pullOpts(r, authn.Anonymous)...)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Index(idx); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if mt, _ := idx.MediaType(); mt != tc.mt {
				t.Errorf("media type %s, want %s", mt, tc.mt)
			}
			im, _ := idx.IndexManifest()
			if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" ||
				im.Manifests[1].Platform.Architecture != "arm64" || im.Manifests[1].Platform.Variant != "v8" ||
				im.Manifests[1].Platform.OS != "linux" {
				t.Errorf("platforms wrong: %+v", im.Manifests)
			}
			// ggcr's platform selection finds the arm64 image.
			img, err := remote.Image(ref, append(pullOpts(r, authn.Anonymous), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}))...)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := img.Digest(); d != Must(arm.Digest()) {
				t.Errorf("platform pull got %s, want arm64 image", d)
			}
		})
	}
}

func TestPushRejectsBadReferences(t *testing.T) {
	r := NewRegistry(t)
	img := smallImage(t, Gzip, "x")
	other := smallImage(t, Gzip, "y")
	for _, ref := range []string{"UPPER/case:tag", "repo@sha256:" + Must(other.Digest()).Hex, "repo:bad tag"} {
		if _, err := r.Push(ref, img); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Push(%q): err = %v, want InvalidArgument", ref, err)
		}
	}
	if _, err := r.Push("repo", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil image: err = %v", err)
	}
	// An implicit tag means latest; a full reference with the host works.
	r.MustPush(t, "implicit", img)
	r.MustPush(t, r.Ref("explicit@"+Must(img.Digest()).String()), img)
	if _, err := pull(t, r, "implicit:latest", authn.Anonymous); err != nil {
		t.Errorf("implicit tag: %v", err)
	}
}

func TestRequestsCountsClientRequestsOnly(t *testing.T) {
	r := NewRegistry(t)
	img := smallImage(t, Gzip, "count")
	r.MustPush(t, "count:v1", img)
	if n := len(r.RequestLog()); n != 0 {
		t.Fatalf("push was logged: %q", r.RequestLog())
	}
	if _, err := pull(t, r, "count:v1", authn.Anonymous); err != nil {
		t.Fatal(err)
	}
	layer := Must(Must(img.Layers())[0].Digest())
	if n := r.Requests(layer.Hex); n != 1 {
		t.Errorf("layer requested %d times, want 1 (log %q)", n, r.RequestLog())
	}
	if n := r.Requests("/manifests/"); n < 1 {
		t.Errorf("manifest requests = %d", n)
	}
	r.ResetRequests()
	if n := r.Requests(""); n != 0 {
		t.Errorf("after reset: %d", n)
	}
}

func TestBasicAuth(t *testing.T) {
	r := NewRegistry(t, WithBasicAuth("alice", "s3cret"))
	r.MustPush(t, "private:v1", smallImage(t, Gzip, "p"))

	_, err := pull(t, r, "private:v1", authn.Anonymous)
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("anonymous: err = %v, want 401", err)
	}
	_, err = pull(t, r, "private:v1", &authn.Basic{Username: "alice", Password: "wrong"})
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("wrong password: err = %v, want 401", err)
	}
	if _, err := pull(t, r, "private:v1", r.Authenticator()); err != nil {
		t.Errorf("right password: %v", err)
	}

	resp, err := http.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("/v2/ = %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestTokenAuth(t *testing.T) {
	r := NewRegistry(t, WithTokenAuth("bob", "hunter2"))
	r.MustPush(t, "team/app:v1", smallImage(t, Gzip, "t"))

	resp, err := http.Get(r.URL + "/v2/team/app/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := `Bearer realm="` + r.URL + `/token",service="testkit",scope="repository:team/app:pull"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("challenge = %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}

	for _, tc := range []struct {
		name string
		auth authn.Authenticator
		ok   bool
	}{
		{"anonymous", authn.Anonymous, false},
		{"wrong password", &authn.Basic{Username: "bob", Password: "nope"}, false},
		{"wrong identity token", authn.FromConfig(authn.AuthConfig{IdentityToken: "nope"}), false},
		{"wrong registry token", authn.FromConfig(authn.AuthConfig{RegistryToken: "nope"}), false},
		{"password", r.Authenticator(), true},
		{"identity token", authn.FromConfig(authn.AuthConfig{IdentityToken: r.IdentityToken()}), true},
		{"registry token", authn.FromConfig(authn.AuthConfig{RegistryToken: r.RegistryToken()}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pull(t, r, "team/app:v1", tc.auth)
			if tc.ok && err != nil {
				t.Errorf("pull: %v", err)
			}
			if !tc.ok && statusOf(err) != http.StatusUnauthorized {
				t.Errorf("pull: err = %v, want 401", err)
			}
		})
	}
}

func TestTokenEndpoint(t *testing.T) {
	r := NewRegistry(t, WithTokenAuth("bob", "hunter2"))
	token := func(req *http.Request) (int, tokenResponse) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr tokenResponse
		json.NewDecoder(resp.Body).Decode(&tr)
		return resp.StatusCode, tr
	}
	get, _ := http.NewRequest("GET", r.URL+"/token?service=testkit&offline_token=true", nil)
	get.SetBasicAuth("bob", "hunter2")
	code, tr := token(get)
	if code != 200 || tr.Token == "" || tr.AccessToken != tr.Token || tr.RefreshToken != r.IdentityToken() {
		t.Fatalf("GET /token = %d %+v", code, tr)
	}

	v2 := func(tok string) int {
		req, _ := http.NewRequest("GET", r.URL+"/v2/", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := v2(tr.Token); c != 200 {
		t.Errorf("issued token: /v2/ = %d", c)
	}
	if c := v2(r.RegistryToken()); c != 200 {
		t.Errorf("static token: /v2/ = %d", c)
	}
	r.RevokeTokens()
	if c := v2(tr.Token); c != 401 {
		t.Errorf("revoked token: /v2/ = %d, want 401", c)
	}
	if c := v2(r.RegistryToken()); c != 200 {
		t.Errorf("static token after revoke: /v2/ = %d", c)
	}

	post := func(form string) int {
		req, _ := http.NewRequest("POST", r.URL+"/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		c, tr := token(req)
		if c == 200 && v2(tr.AccessToken) != 200 {
			t.Errorf("POST %s: token not accepted", form)
		}
		return c
	}
	if c := post("grant_type=refresh_token&refresh_token=" + r.IdentityToken()); c != 200 {
		t.Errorf("refresh grant = %d", c)
	}
	if c := post("grant_type=password&username=bob&password=hunter2"); c != 200 {
		t.Errorf("password grant = %d", c)
	}
	if c := post("grant_type=password&username=bob&password=x"); c != 401 {
		t.Errorf("bad password grant = %d, want 401", c)
	}
	if c := post("grant_type=magic"); c != 400 {
		t.Errorf("unknown grant = %d, want 400", c)
	}
	unauth, _ := http.NewRequest("GET", r.URL+"/token", nil)
	if c, _ := token(unauth); c != 401 {
		t.Errorf("GET /token without credentials = %d, want 401", c)
	}
}

func TestTLS(t *testing.T) {
	r := NewRegistry(t, WithTLS())
	if !strings.HasPrefix(r.URL, "https://") || r.ClientCertPEM() != nil {
		t.Fatalf("URL %s, client cert %v", r.URL, r.ClientCertPEM() != nil)
	}
	r.MustPush(t, "secure:v1", smallImage(t, Gzip, "s"))

	// A client that does not trust the CA fails.
	_, err := remote.Image(mustRef(t, r.Ref("secure:v1")))
	var unknownCA x509.UnknownAuthorityError
	if !errors.As(err, &unknownCA) {
		t.Errorf("untrusted: err = %v, want unknown authority", err)
	}
	// One that trusts CACertPEM succeeds.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(r.CACertPEM()) {
		t.Fatal("CACertPEM is not PEM")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	img, err := remote.Image(mustRef(t, r.Ref("secure:v1")), remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyImage(img); err != nil {
		t.Error(err)
	}
	// The server certificate is also valid for localhost.
	tr = tr.Clone()
	tr.TLSClientConfig.ServerName = "localhost"
	resp, err := (&http.Client{Transport: tr}).Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestTLSWithTokenAuth(t *testing.T) {
	r := NewRegistry(t, WithTLS(), WithTokenAuth("u", "p"))
	r.MustPush(t, "both:v1", smallImage(t, Gzip, "b"))
	if _, err := pull(t, r, "both:v1", authn.Anonymous); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("anonymous: err = %v, want 401", err)
	}
	r.ResetRequests()
	if _, err := pull(t, r, "both:v1", r.Authenticator()); err != nil {
		t.Errorf("with credentials over TLS: %v", err)
	}
	if n := r.Requests("/token"); n != 1 {
		t.Errorf("/token requested %d times, want 1", n)
	}
}

func TestClientCert(t *testing.T) {
	r := NewRegistry(t, WithClientCert())
	r.MustPush(t, "mtls:v1", smallImage(t, Gzip, "m"))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CACertPEM())
	noCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if _, err := (&http.Client{Transport: noCert}).Get(r.URL + "/v2/"); err == nil {
		t.Error("request without a client certificate succeeded")
	}
	cert, err := tls.X509KeyPair(r.ClientCertPEM(), r.ClientKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	withCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	if _, err := remote.Image(mustRef(t, r.Ref("mtls:v1")), remote.WithTransport(withCert)); err != nil {
		t.Errorf("with client cert: %v", err)
	}
	if _, err := pull(t, r, "mtls:v1", authn.Anonymous); err != nil {
		t.Errorf("with r.Transport(): %v", err)
	}
}

func TestCloseIsIdempotentAndStopsServing(t *testing.T) {
	r, err := StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.Get(r.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Error("closed registry still answers")
	}
	if _, err := r.Push("x", smallImage(t, Gzip, "x")); err == nil {
		t.Error("push to a closed registry succeeded")
	}
	if _, err := StartRegistry(WithBasicAuth("", "x")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("auth without user: err = %v", err)
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
