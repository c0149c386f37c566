package integration

// End-to-end proofs of the pull path through the real daemon and the CRI
// client: hosts.toml (_default, plain HTTP, TLS), index and digest
// bookkeeping, every CRI auth form, and the stall timeout's config key.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// markedImage is a one-layer image whose config and layer are unique to mark.
func markedImage(t *testing.T, mark string, c testkit.Compression) v1.Image {
	t.Helper()
	l := testkit.MustLayer(t, []testkit.Entry{testkit.File("mark", mark)}, c)
	return testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}, Env: []string{"MARK=" + mark}}, l)
}

func hashOf(t *testing.T, x interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func configOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// imageByID is the CRI record with id, from ListImages and from ImageStatus
// by id, which must agree.
func (d *daemon) imageByID(id string) *runtimeapi.Image {
	d.t.Helper()
	list, err := d.Images.ListImages(context.Background(), nil)
	if err != nil {
		d.t.Fatal(err)
	}
	var listed *runtimeapi.Image
	for _, img := range list {
		if img.Id == id {
			listed = img
		}
	}
	if listed == nil {
		d.t.Fatalf("ListImages has no image %s: %v", id, list)
	}
	st, err := d.Images.ImageStatus(context.Background(), spec(id), false)
	if err != nil || st.GetImage().GetId() != id {
		d.t.Fatalf("ImageStatus(%s) = %v, %v", id, st.GetImage(), err)
	}
	if !slices.Equal(st.Image.RepoTags, listed.RepoTags) || !slices.Equal(st.Image.RepoDigests, listed.RepoDigests) {
		d.t.Fatalf("ImageStatus and ListImages disagree: %v / %v", st.Image, listed)
	}
	return listed
}

// assertNothingPulled checks that a failed pull left no record, no layer
// and no unpack in progress.
func (d *daemon) assertNothingPulled() {
	d.t.Helper()
	if list, _ := d.Images.ListImages(context.Background(), nil); len(list) != 0 {
		d.t.Errorf("image recorded after a failed pull: %v", list)
	}
	eventually(d.t, 10*time.Second, "an empty layer store", func() bool { return len(d.layerDirs()) == 0 })
}

func wantPullCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("err = %v, want code %v", err, code)
	}
}

// Registry names that are not loopback addresses are only ever reached
// through hosts.toml here: the tests succeed only if the daemon reads the
// configuration (registry.config_path), since these names do not resolve.
func TestPullAuditHostsToml(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	tlsReg := testkit.NewRegistry(t, testkit.WithTLS())
	img := markedImage(t, "hosts", testkit.Gzip)
	reg.MustPush(t, "library/app:1", img)
	tlsReg.MustPush(t, "library/app:1", img)
	id := configOf(t, img)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	pull := func(ref string) (string, error) { return d.Images.PullImage(ctx, spec(ref), nil, nil) }

	t.Run("_default mirror", func(t *testing.T) {
		// Every registry without a directory of its own goes through the
		// mirror; the upstream (a dead loopback port) is never needed.
		d.writeHostsToml("_default", fmt.Sprintf("server = \"http://%s\"\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", deadAddr, reg.Host))
		defer os.RemoveAll(filepath.Join(d.dir, "certs.d", "_default"))
		reg.ResetRequests()
		got, err := pull("mirrored.invalid/library/app:1")
		if err != nil {
			t.Fatal(err)
		}
		if got != id || reg.Requests("/v2/library/app/manifests/1") != 1 {
			t.Fatalf("id %s, mirror requests %v", got, reg.RequestLog())
		}
		if tags := d.imageByID(id).RepoTags; !slices.Contains(tags, "mirrored.invalid/library/app:1") {
			t.Errorf("RepoTags = %v: the image is recorded under the name asked for, not the mirror's", tags)
		}
	})

	t.Run("plain HTTP server", func(t *testing.T) {
		d.writeHostsToml("plain.invalid:5000", fmt.Sprintf("server = \"http://%s\"\n", reg.Host))
		if got, err := pull("plain.invalid:5000/library/app:1"); err != nil || got != id {
			t.Fatalf("pull = %s, %v", got, err)
		}
	})

	t.Run("TLS without trust fails", func(t *testing.T) {
		d.writeHostsToml("untrusted.invalid", fmt.Sprintf("server = \"https://%s\"\n", tlsReg.Host))
		_, err := pull("untrusted.invalid/library/app:1")
		wantPullCode(t, err, codes.Unavailable)
		if !strings.Contains(status.Convert(err).Message(), "certificate") {
			t.Errorf("message %q does not say the certificate is the problem", status.Convert(err).Message())
		}
	})

	t.Run("TLS skip_verify", func(t *testing.T) {
		d.writeHostsToml("insecure.invalid", fmt.Sprintf("server = \"https://%s\"\nskip_verify = true\n", tlsReg.Host))
		if got, err := pull("insecure.invalid/library/app:1"); err != nil || got != id {
			t.Fatalf("pull = %s, %v", got, err)
		}
	})

	t.Run("TLS CA file", func(t *testing.T) {
		d.writeHostsToml("trusted.invalid", fmt.Sprintf("server = \"https://%s\"\nca = \"ca.pem\"\n", tlsReg.Host))
		if err := os.WriteFile(filepath.Join(d.dir, "certs.d", "trusted.invalid", "ca.pem"), tlsReg.CACertPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		if got, err := pull("trusted.invalid/library/app:1"); err != nil || got != id {
			t.Fatalf("pull = %s, %v", got, err)
		}
	})

	t.Run("broken hosts.toml", func(t *testing.T) {
		d.writeHostsToml("broken.invalid", "server = [\n")
		_, err := pull("broken.invalid/library/app:1")
		wantPullCode(t, err, codes.FailedPrecondition)
		if !strings.Contains(status.Convert(err).Message(), "hosts.toml") {
			t.Errorf("message %q does not name the file", status.Convert(err).Message())
		}
	})
}

// One image reached by tag through an index, by digest from a second
// repository, and by tag+digest: one ID everywhere (the host platform's
// config digest), the index digest as repo digest, tags only where asked.
func TestPullAuditIndexTagsAndDigests(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	host := markedImage(t, "host", testkit.Gzip)
	other := testkit.MustImage(t, testkit.ImageConfig{Architecture: "s390x"},
		testkit.MustLayer(t, []testkit.Entry{testkit.File("mark", "s390x")}, testkit.Gzip))
	idx := testkit.MustIndex(t, other, host)
	idxDigest := reg.MustPushIndex(t, "multi/app:1", idx).String()
	reg.MustPushIndex(t, "second/app:2", idx)
	id := configOf(t, host)

	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	got, err := d.Images.PullImage(ctx, spec(reg.Ref("multi/app:1")), nil, nil)
	if err != nil || got != id {
		t.Fatalf("PullImage = %s, %v; want the host platform's config digest %s", got, err, id)
	}
	if n := reg.Requests(hashOf(t, other)[len("sha256:"):]); n != 0 {
		t.Errorf("fetched the other platform's manifest %d times", n)
	}
	img := d.imageByID(id)
	first, second := reg.Host+"/multi/app", reg.Host+"/second/app"
	if !slices.Equal(img.RepoTags, []string{first + ":1"}) || !slices.Equal(img.RepoDigests, []string{first + "@" + idxDigest}) {
		t.Fatalf("by tag: tags %v digests %v; want the tag and the index digest", img.RepoTags, img.RepoDigests)
	}

	// By digest from a second repository: its digest is added, no tag.
	if got, err := d.Images.PullImage(ctx, spec(second+"@"+idxDigest), nil, nil); err != nil || got != id {
		t.Fatalf("by digest: %s, %v", got, err)
	}
	img = d.imageByID(id)
	if !slices.Equal(img.RepoTags, []string{first + ":1"}) ||
		!slices.Equal(img.RepoDigests, []string{first + "@" + idxDigest, second + "@" + idxDigest}) {
		t.Fatalf("by digest: tags %v digests %v", img.RepoTags, img.RepoDigests)
	}

	// Tag and digest: the digest is pulled (the tag is never resolved, it
	// may point elsewhere), the tag recorded.
	reg.ResetRequests()
	if got, err := d.Images.PullImage(ctx, spec(second+":pinned@"+idxDigest), nil, nil); err != nil || got != id {
		t.Fatalf("by tag+digest: %s, %v", got, err)
	}
	if n := reg.Requests("/manifests/pinned"); n != 0 {
		t.Errorf("the tag was resolved although a digest was given")
	}
	img = d.imageByID(id)
	if !slices.Equal(img.RepoTags, []string{first + ":1", second + ":pinned"}) {
		t.Errorf("by tag+digest: tags %v", img.RepoTags)
	}

	// Every name finds the same image.
	for _, ref := range []string{first + ":1", second + ":pinned", first + "@" + idxDigest, second + "@" + idxDigest, id} {
		st, err := d.Images.ImageStatus(ctx, spec(ref), false)
		if err != nil || st.GetImage().GetId() != id {
			t.Errorf("ImageStatus(%s) = %v, %v", ref, st.GetImage(), err)
		}
	}

	// A digest the registry does not have, and a malformed one.
	absent := "sha256:" + strings.Repeat("0", 64)
	_, err = d.Images.PullImage(ctx, spec(first+"@"+absent), nil, nil)
	wantPullCode(t, err, codes.NotFound)
	_, err = d.Images.PullImage(ctx, spec(first+"@sha256:abc"), nil, nil)
	wantPullCode(t, err, codes.InvalidArgument)
}

// Docker schema 2 and OCI manifests; gzip, zstd and uncompressed layers;
// a Docker manifest list: each lands with the config digest as its ID.
func TestPullAuditFormats(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	type tc struct {
		ref string
		id  string
	}
	var cases []tc
	for _, c := range []testkit.Compression{testkit.Gzip, testkit.Zstd, testkit.Uncompressed} {
		l := testkit.MustLayer(t, []testkit.Entry{testkit.File("mark", c.String())}, c)
		oci := testkit.MustImage(t, testkit.ImageConfig{Env: []string{"C=" + c.String()}}, l)
		reg.MustPush(t, "oci/"+c.String()+":1", oci)
		cases = append(cases, tc{reg.Ref("oci/" + c.String() + ":1"), configOf(t, oci)})
		if c != testkit.Zstd { // Docker schema 2 has no zstd layer type
			docker := testkit.Must(testkit.NewDockerImage(testkit.ImageConfig{Env: []string{"D=" + c.String()}}, l))
			reg.MustPush(t, "docker/"+c.String()+":1", docker)
			cases = append(cases, tc{reg.Ref("docker/" + c.String() + ":1"), configOf(t, docker)})
		}
	}
	listed := markedImage(t, "list", testkit.Gzip)
	reg.MustPushIndex(t, "docker/list:1", testkit.Must(testkit.NewDockerManifestList(listed)))
	cases = append(cases, tc{reg.Ref("docker/list:1"), configOf(t, listed)})

	d := startDaemon(t, daemonOpts{})
	for _, c := range cases {
		got, err := d.Images.PullImage(context.Background(), spec(c.ref), nil, nil)
		if err != nil || got != c.id {
			t.Errorf("PullImage(%s) = %s, %v; want %s", c.ref, got, err, c.id)
		}
	}
	// The uncompressed layer is shared by its OCI and Docker images, and
	// stored once; gzip likewise. zstd's and the list's are their own.
	if n := len(d.layerDirs()); n != 4 {
		t.Errorf("%d layers stored, want 4 (gzip, zstd, uncompressed, list): %v", n, d.layerDirs())
	}
}

// Every form of CRI AuthConfig against a registry using the Docker token
// protocol, and the refusals' codes.
func TestPullAuditAuthConfig(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t, testkit.WithTokenAuth("bob", "hunter2"))
	img := markedImage(t, "auth", testkit.Gzip)
	reg.MustPush(t, "private/app:1", img)
	id := configOf(t, img)
	d := startDaemon(t, daemonOpts{})
	ref := reg.Ref("private/app:1")
	ctx := context.Background()

	refused := []struct {
		name string
		auth *runtimeapi.AuthConfig
		code codes.Code
	}{
		{"anonymous", nil, codes.Unauthenticated},
		{"wrong password", &runtimeapi.AuthConfig{Username: "bob", Password: "nope"}, codes.Unauthenticated},
		{"bad identity token", &runtimeapi.AuthConfig{IdentityToken: "bogus"}, codes.Unauthenticated},
		{"bad registry token", &runtimeapi.AuthConfig{RegistryToken: "bogus"}, codes.Unauthenticated},
		// An identity token is a refresh token for the token server, never a
		// bearer token itself.
		{"identity token as registry token", &runtimeapi.AuthConfig{RegistryToken: reg.IdentityToken()}, codes.Unauthenticated},
		{"credentials for another registry", &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2", ServerAddress: "elsewhere.invalid"}, codes.Unauthenticated},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Images.PullImage(ctx, spec(ref), tc.auth, nil)
			wantPullCode(t, err, tc.code)
			d.assertNothingPulled()
		})
	}

	accepted := []struct {
		name string
		auth *runtimeapi.AuthConfig
	}{
		{"username and password", &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2", ServerAddress: reg.Host}},
		{"auth field", &runtimeapi.AuthConfig{Auth: "Ym9iOmh1bnRlcjI="}}, // bob:hunter2
		{"identity token", &runtimeapi.AuthConfig{IdentityToken: reg.IdentityToken()}},
		{"registry token", &runtimeapi.AuthConfig{RegistryToken: reg.RegistryToken()}},
	}
	for _, tc := range accepted {
		t.Run(tc.name, func(t *testing.T) {
			reg.ResetRequests()
			got, err := d.Images.PullImage(ctx, spec(ref), tc.auth, nil)
			if err != nil || got != id {
				t.Fatalf("PullImage = %s, %v", got, err)
			}
			tokens := reg.Requests("/token")
			switch {
			case tc.auth.RegistryToken != "" && tokens != 0:
				t.Errorf("a registry token is sent as is; it was exchanged %d times", tokens)
			case tc.auth.RegistryToken == "" && tokens == 0:
				t.Errorf("no token exchange: the registry let an unauthenticated client in")
			}
			if err := d.Images.RemoveImage(ctx, spec(id)); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("permission denied", func(t *testing.T) {
		reg.SetFault(testkit.FailStatus("/manifests/", http.StatusForbidden))
		defer reg.SetFault(nil)
		_, err := d.Images.PullImage(ctx, spec(ref), &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2"}, nil)
		wantPullCode(t, err, codes.PermissionDenied)
		d.assertNothingPulled()
	})
}

// registry.stall_timeout from the config file: a stalled layer fails the
// pull with DeadlineExceeded and leaves nothing; a slow but moving one that
// takes several timeouts completes.
func TestPullAuditStallTimeoutConfigKey(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	top := testkit.MustRandomLayer(t, 64<<10, 11, testkit.Uncompressed)
	img := testkit.MustImage(t, testkit.ImageConfig{}, testkit.MustLayer(t, []testkit.Entry{testkit.File("base", "x")}, testkit.Gzip), top)
	reg.MustPush(t, "slow/app:1", img)
	topHex := hashOf(t, top)[len("sha256:"):]

	d := newDaemonFiles(t, daemonOpts{})
	conf, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	conf = []byte(strings.Replace(string(conf), "[registry]\n", "[registry]\nstall_timeout = \"1s\"\n", 1))
	if err := os.WriteFile(d.config, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	d.start()
	ctx := context.Background()

	reg.SetFault(testkit.StallBlob(topHex, 4096, nil))
	start := time.Now()
	_, err = d.Images.PullImage(ctx, spec(reg.Ref("slow/app:1")), nil, nil)
	wantPullCode(t, err, codes.DeadlineExceeded)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "no progress for 1s") {
		t.Errorf("message %q does not name the stall timeout", msg)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a 1s stall timeout took %s", took)
	}
	d.assertNothingPulled()

	// ~4 s at 16 KiB/s in steady small steps: four timeouts long, never idle.
	reg.SetFault(testkit.SlowBlob(topHex, 16<<10))
	start = time.Now()
	if _, err := d.Images.PullImage(ctx, spec(reg.Ref("slow/app:1")), nil, nil); err != nil {
		t.Fatalf("a slow but moving pull failed: %v", err)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("the slow pull took only %s; the test proves nothing", took)
	}
}
