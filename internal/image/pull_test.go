package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPullRecordsImage(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	base := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/os-release", "base\n"), testkit.File("etc/gone", "x")}, testkit.Gzip)
	top := testkit.MustLayer(t, []testkit.Entry{testkit.File("etc/os-release", "top\n"), testkit.Whiteout("etc/gone")}, testkit.Gzip)
	src := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}, User: "1000", Env: []string{"A=b"}}, base, top)
	manifestDigest := r.MustPush(t, "library/app:v1", src)

	var mu sync.Mutex
	var last Progress
	img, err := e.svc.Pull(context.Background(), r.Ref("library/app:v1"), nil, func(p Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	name := r.Host + "/library/app"
	if img.ID.String() != configDigest(t, src).String() {
		t.Errorf("ID = %s, want the config digest %s", img.ID, configDigest(t, src))
	}
	if !reflect.DeepEqual(img.RepoTags, []string{name + ":v1"}) {
		t.Errorf("RepoTags = %v", img.RepoTags)
	}
	if !reflect.DeepEqual(img.RepoDigests, []string{name + "@" + manifestDigest.String()}) {
		t.Errorf("RepoDigests = %v", img.RepoDigests)
	}
	if img.ManifestDigest.String() != manifestDigest.String() || img.ManifestMediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest %s %s", img.ManifestDigest, img.ManifestMediaType)
	}
	m, _ := src.Manifest()
	wantSize := m.Config.Size
	for _, l := range m.Layers {
		wantSize += l.Size
	}
	if img.Size != wantSize {
		t.Errorf("Size = %d, want compressed layers + config = %d", img.Size, wantSize)
	}
	if img.Config.Config.User != "1000" || !reflect.DeepEqual(img.Config.Config.Cmd, []string{"sh"}) || len(img.ChainIDs) != 2 {
		t.Errorf("config/chain not recorded: %+v %v", img.Config.Config, img.ChainIDs)
	}
	if got := e.readLayerFile(img, "etc/os-release"); got != "top\n" {
		t.Errorf("top layer content %q", got)
	}
	if last.Layers != 2 || last.LayersDone != 2 || last.Done != last.Total || last.Total == 0 {
		t.Errorf("final progress %+v", last)
	}

	// Every way of naming the image finds the same record.
	hex := img.ID.Encoded()
	for _, ref := range []string{
		img.ID.String(), hex, hex[:12], hex[:MinIDPrefix], "sha256:" + hex[:8],
		name + ":v1", name + "@" + manifestDigest.String(), name + ":other@" + manifestDigest.String(),
	} {
		got, ok, err := e.svc.Get(ref)
		if err != nil || !ok || got.ID != img.ID {
			t.Errorf("Get(%q) = %v, %v, %v", ref, got.ID, ok, err)
		}
	}
	for _, ref := range []string{hex[:2], name + ":v2", "busybox", "sha256:" + strings.Repeat("0", 64)} {
		if _, ok, err := e.svc.Get(ref); ok || err != nil {
			t.Errorf("Get(%q) = %v, %v; want absent", ref, ok, err)
		}
	}
	if _, _, err := e.svc.Get("Not/A/Ref!"); err == nil {
		t.Error("Get of a malformed reference must fail")
	}
	list, err := e.svc.List("")
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Errorf("List = %v, %v", list, err)
	}
	if list, err := e.svc.List(name + ":v1"); err != nil || len(list) != 1 {
		t.Errorf("List(filter) = %v, %v", list, err)
	}
	if list, err := e.svc.List(name + ":nope"); err != nil || len(list) != 0 {
		t.Errorf("List(absent filter) = %v, %v", list, err)
	}
	bytes, inodes, err := e.svc.FsUsage()
	if err != nil || bytes < 8 || inodes < 4 {
		t.Errorf("FsUsage = %d, %d, %v", bytes, inodes, err)
	}

	// Returned records are copies.
	list[0].RepoTags[0] = "mutated"
	if got, _, _ := e.svc.Get(img.ID.String()); got.RepoTags[0] != name+":v1" {
		t.Error("a caller changed the stored record")
	}
}

func TestPullFormats(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	tests := []struct {
		name      string
		docker    bool
		c         testkit.Compression
		manifestT string
	}{
		{"oci-gzip", false, testkit.Gzip, ocispec.MediaTypeImageManifest},
		{"oci-zstd", false, testkit.Zstd, ocispec.MediaTypeImageManifest},
		{"oci-uncompressed", false, testkit.Uncompressed, ocispec.MediaTypeImageManifest},
		{"docker-gzip", true, testkit.Gzip, mediaTypeDockerManifest},
		{"docker-uncompressed", true, testkit.Uncompressed, mediaTypeDockerManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two layers, the second bigger than read buffers, so stream
			// handling across reads is exercised.
			l1 := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/format", tt.name)}, tt.c)
			l2 := testkit.MustRandomLayer(t, 300<<10, int64(len(tt.name)), tt.c)
			cfg := testkit.ImageConfig{Env: []string{"F=" + tt.name}}
			var src v1.Image
			if tt.docker {
				src = testkit.Must(testkit.NewDockerImage(cfg, l1, l2))
			} else {
				src = testkit.MustImage(t, cfg, l1, l2)
			}
			r.MustPush(t, "fmt/"+tt.name+":latest", src)
			img := e.pull(r.Ref("fmt/" + tt.name))
			if img.ManifestMediaType != tt.manifestT {
				t.Errorf("manifest type %s", img.ManifestMediaType)
			}
			if got := e.readLayerFile(img, "etc/format"); got != tt.name {
				t.Errorf("content %q", got)
			}
			info, ok := e.layers.Get(img.ChainIDs[1])
			if !ok || info.Size < 300<<10 {
				t.Errorf("random layer info %+v", info)
			}
		})
	}
}

// A registry may label an uncompressed layer as gzip (old Docker did); the
// stream's magic bytes decide.
func TestPullSniffsCompression(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	plain := testkit.MustLayer(t, []testkit.Entry{testkit.File("f", "plain")}, testkit.Uncompressed)
	zst := testkit.MustLayer(t, []testkit.Entry{testkit.File("g", "zstd")}, testkit.Zstd)
	src := testkit.MustImage(t, testkit.ImageConfig{},
		relabelledLayer{Layer: plain, mt: types.DockerLayer},
		relabelledLayer{Layer: zst, mt: types.OCILayer})
	r.MustPush(t, "sniff:latest", src)
	img := e.pull(r.Ref("sniff"))
	if got := e.readLayerFile(img, "f"); got != "plain" {
		t.Errorf("content %q", got)
	}
	if got := e.readLayerFile(img, "g"); got != "zstd" {
		t.Errorf("content %q", got)
	}
}

type relabelledLayer struct {
	v1.Layer
	mt types.MediaType
}

func (l relabelledLayer) MediaType() (types.MediaType, error) { return l.mt, nil }

func TestPullIndexChoosesPlatform(t *testing.T) {
	for _, docker := range []bool{false, true} {
		t.Run(fmt.Sprintf("docker=%v", docker), func(t *testing.T) {
			e := newEnv(t)
			r := testkit.NewRegistry(t)
			host := testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", runtime.GOARCH)}, testkit.Gzip)
			other := testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", "s390x")}, testkit.Gzip)
			hostImg := testkit.MustImage(t, testkit.ImageConfig{}, host)
			otherImg := testkit.MustImage(t, testkit.ImageConfig{Architecture: "s390x"}, other)
			var idx v1.ImageIndex
			if docker {
				idx = testkit.Must(testkit.NewDockerManifestList(otherImg, hostImg))
			} else {
				idx = testkit.MustIndex(t, otherImg, hostImg)
			}
			idxDigest := r.MustPushIndex(t, "multi:latest", idx)

			img := e.pull(r.Ref("multi"))
			if got := e.readLayerFile(img, "arch"); got != runtime.GOARCH {
				t.Fatalf("pulled the %s image", got)
			}
			if img.ID.String() != configDigest(t, hostImg).String() || img.ManifestDigest.String() != digestOf(t, hostImg).String() {
				t.Errorf("ID %s manifest %s", img.ID, img.ManifestDigest)
			}
			name := r.Host + "/multi"
			if !reflect.DeepEqual(img.RepoDigests, []string{name + "@" + idxDigest.String()}) {
				t.Errorf("RepoDigests = %v, want the index digest", img.RepoDigests)
			}
			for _, d := range []v1.Hash{digestOf(t, otherImg), configDigest(t, otherImg), digestOf(t, other)} {
				if n := r.Requests(d.Hex); n != 0 {
					t.Errorf("fetched %d times something of the other platform (%s)", n, d)
				}
			}
			for _, ref := range []string{name + "@" + idxDigest.String(), name + "@" + img.ManifestDigest.String()} {
				if got, ok, _ := e.svc.Get(ref); !ok || got.ID != img.ID {
					t.Errorf("Get(%s) = %v", ref, ok)
				}
			}

			// Pulling the same index by digest lands on the same record.
			again := e.pull(name + "@" + idxDigest.String())
			if again.ID != img.ID {
				t.Errorf("by digest: %s", again.ID)
			}
		})
	}
}

func TestPullPlatformOverrideAndMissingPlatform(t *testing.T) {
	r := testkit.NewRegistry(t)
	amd := testkit.MustImage(t, testkit.ImageConfig{Architecture: "amd64"}, testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", "amd64")}, testkit.Gzip))
	arm := testkit.MustImage(t, testkit.ImageConfig{Architecture: "arm64", Variant: "v8"}, testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", "arm64")}, testkit.Gzip))
	r.MustPushIndex(t, "multi:latest", testkit.MustIndex(t, amd, arm))

	e := newEnv(t, func(c *Config) { c.Platform = ocispec.Platform{OS: "linux", Architecture: "arm64"} })
	img := e.pull(r.Ref("multi"))
	if got := e.readLayerFile(img, "arch"); got != "arm64" {
		t.Errorf("pulled %s", got)
	}
	e2 := newEnv(t, func(c *Config) { c.Platform = ocispec.Platform{Architecture: "riscv64"} })
	_, err := e2.svc.Pull(context.Background(), r.Ref("multi"), nil, nil)
	wantKind(t, err, errdefs.ErrNotFound)
	if !strings.Contains(err.Error(), "linux/riscv64") {
		t.Errorf("message %q does not say which platform", err)
	}
	e2.assertEmpty()
}

func TestPullTagAndDigest(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	src := smallImage(t, "td", testkit.Gzip)
	d := r.MustPush(t, "app:published", src)

	img := e.pull(r.Ref("app:mine@" + d.String()))
	name := r.Host + "/app"
	if !reflect.DeepEqual(img.RepoTags, []string{name + ":mine"}) || !reflect.DeepEqual(img.RepoDigests, []string{name + "@" + d.String()}) {
		t.Errorf("tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
	if n := r.Requests("/manifests/mine"); n != 0 {
		t.Errorf("resolved the tag (%d requests) although a digest was given", n)
	}
	if n := r.Requests("/manifests/" + d.String()); n != 1 {
		t.Errorf("manifest by digest requested %d times", n)
	}

	// Pull by digest only: no tag.
	e2 := newEnv(t)
	img = e2.pull(r.Ref("app@" + d.String()))
	if len(img.RepoTags) != 0 || len(img.RepoDigests) != 1 {
		t.Errorf("tags %v digests %v", img.RepoTags, img.RepoDigests)
	}
}

func TestPullErrors(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	r.MustPush(t, "app:latest", smallImage(t, "x", testkit.Gzip))

	_, err := e.svc.Pull(context.Background(), "Bad Ref", nil, nil)
	wantKind(t, err, errdefs.ErrInvalidArgument)
	// An image ID is not docker.io/library/sha256:<hex>.
	_, err = e.svc.Pull(context.Background(), "sha256:"+strings.Repeat("ab", 32), nil, nil)
	wantKind(t, err, errdefs.ErrInvalidArgument)

	_, err = e.svc.Pull(context.Background(), r.Ref("app:nope"), nil, nil)
	wantKind(t, err, errdefs.ErrNotFound)
	_, err = e.svc.Pull(context.Background(), r.Ref("nothere:latest"), nil, nil)
	wantKind(t, err, errdefs.ErrNotFound)

	r.SetFault(testkit.FailStatus("/manifests/", 500))
	_, err = e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrUnavailable)
	r.SetFault(testkit.FailStatus("/manifests/", 429))
	_, err = e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrResourceExhausted)
	r.SetFault(nil)

	// Nothing listens on a port just freed.
	dead := testkit.NewRegistry(t)
	host := dead.Host
	dead.Close()
	_, err = e.svc.Pull(context.Background(), host+"/app:latest", nil, nil)
	wantKind(t, err, errdefs.ErrUnavailable)
	if !strings.Contains(err.Error(), host) {
		t.Errorf("message %q does not name the registry", err)
	}
	e.assertEmpty()
}

func TestPullBusybox(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	r.MustPush(t, "library/busybox:latest", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	img := e.pull(r.Ref("library/busybox"))
	st, err := os.Stat(filepath.Join(e.layers.DiffDir(img.ChainIDs[0]), "bin/busybox"))
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("bin/busybox: %v %v", st, err)
	}
	if !reflect.DeepEqual(img.Config.Config.Cmd, []string{"sh"}) {
		t.Errorf("cmd %v", img.Config.Config.Cmd)
	}
}

func TestCloseCancelsPulls(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	src := smallImage(t, "c", testkit.Gzip)
	r.MustPush(t, "app:latest", src)
	r.SetFault(testkit.StallBlob(layerDigests(t, src)[0].Hex, 10, nil))
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
		done <- err
	}()
	waitFor(t, "the stalled download", func() bool { return r.Requests(layerDigests(t, src)[0].Hex) == 1 })
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("a pull survived Close")
	}
	_, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	if err := e.svc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	e.open()
	e.assertEmpty()
}
