package image

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseChallenges(t *testing.T) {
	got := parseChallenges([]string{
		`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"`,
		`Basic realm="x, y", Bearer realm=https://t.example.com/tok,error="invalid_token"`,
		`Negotiate`,
		`Bearer realm="a\"b"`,
	})
	want := []challenge{
		{scheme: "bearer", params: map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull"}},
		{scheme: "basic", params: map[string]string{"realm": "x, y"}},
		{scheme: "bearer", params: map[string]string{"realm": "https://t.example.com/tok", "error": "invalid_token"}},
		{scheme: "negotiate", params: map[string]string{}},
		{scheme: "bearer", params: map[string]string{"realm": `a"b`}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestNewCredentials(t *testing.T) {
	c, err := newCredentials(&Auth{Auth: "dXNlcjpwYTpzcw==", ServerAddress: "https://index.docker.io/v1/"}) // user:pa:ss
	if err != nil {
		t.Fatal(err)
	}
	if c.username != "user" || c.password != "pa:ss" || c.server != "docker.io" {
		t.Errorf("got %+v", c)
	}
	if c, err := newCredentials(&Auth{}); c != nil || err != nil {
		t.Errorf("empty auth = %v, %v; want anonymous", c, err)
	}
	for _, bad := range []string{"!!!", "bm9jb2xvbg=="} { // not base64; "nocolon"
		if _, err := newCredentials(&Auth{Auth: bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("auth %q: %v", bad, err)
		}
	}
}

func TestCredentialsApplyTo(t *testing.T) {
	mirror := RegistryHost{Host: "mirror.example.com:5000"}
	upstream := RegistryHost{Host: "registry-1.docker.io", Upstream: true}
	all := &credentials{username: "u"}
	if !all.appliesTo("docker.io", mirror) || !all.appliesTo("docker.io", upstream) {
		t.Error("credentials without server_address go to every host")
	}
	hub := &credentials{username: "u", server: normaliseServerAddress("registry-1.docker.io")}
	if hub.appliesTo("docker.io", mirror) || !hub.appliesTo("docker.io", upstream) {
		t.Error("docker.io credentials must go to the upstream only")
	}
	m := &credentials{username: "u", server: normaliseServerAddress("https://mirror.example.com:5000/v2/")}
	if !m.appliesTo("docker.io", mirror) || m.appliesTo("docker.io", upstream) {
		t.Error("mirror credentials must go to the mirror only")
	}
	var none *credentials
	if none.appliesTo("docker.io", upstream) {
		t.Error("nil credentials apply nowhere")
	}
}

func TestChoosePlatform(t *testing.T) {
	d := func(os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest("sha256:" + os + arch + variant),
			Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	attestation := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:att",
		Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}}
	list := []ocispec.Descriptor{
		attestation,
		d("linux", "arm", "v6"), d("linux", "arm", "v7"), d("linux", "arm64", "v8"),
		d("linux", "amd64", ""), d("windows", "amd64", ""), d("linux", "s390x", ""),
	}
	tests := []struct {
		want ocispec.Platform
		pick string
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, "sha256:linuxamd64"},
		{ocispec.Platform{Architecture: "arm64"}, "sha256:linuxarm64v8"},
		{ocispec.Platform{Architecture: "aarch64"}, "sha256:linuxarm64v8"},
		{ocispec.Platform{Architecture: "arm"}, "sha256:linuxarmv7"},
		{ocispec.Platform{Architecture: "arm", Variant: "v6"}, "sha256:linuxarmv6"},
		{ocispec.Platform{Architecture: "arm", Variant: "v8"}, "sha256:linuxarmv7"}, // newest older one
		{ocispec.Platform{OS: "windows", Architecture: "amd64"}, "sha256:windowsamd64"},
		{ocispec.Platform{Architecture: "s390x"}, "sha256:linuxs390x"},
	}
	for _, tt := range tests {
		got, err := choosePlatform(tt.want, list)
		if err != nil {
			t.Errorf("%+v: %v", tt.want, err)
			continue
		}
		if string(got.Digest) != tt.pick {
			t.Errorf("%+v: picked %s, want %s", tt.want, got.Digest, tt.pick)
		}
	}
	_, err := choosePlatform(ocispec.Platform{Architecture: "riscv64"}, list)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing platform: %v", err)
	}
	t.Log(err)
}
