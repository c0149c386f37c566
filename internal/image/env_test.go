package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// env is an image service on a fresh root, as the daemon builds it.
type env struct {
	t      *testing.T
	root   string
	cfg    Config
	layers *layer.Store
	svc    *Service
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("unpacking layers needs root")
	}
}

func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	requireRoot(t)
	root := t.TempDir()
	e := &env{t: t, root: root, cfg: Config{
		Dir:                filepath.Join(root, "images"),
		RegistryConfigPath: filepath.Join(root, "certs.d"),
		StallTimeout:       time.Minute,
	}}
	for _, m := range mutate {
		m(&e.cfg)
	}
	e.open()
	t.Cleanup(func() { e.svc.Close() })
	return e
}

// open starts layer store and service as the daemon does at boot.
func (e *env) open() {
	e.t.Helper()
	ls, err := layer.Open(filepath.Join(e.root, "layers"))
	if err != nil {
		e.t.Fatal(err)
	}
	svc, err := New(e.cfg, ls)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ls.Prune(); err != nil {
		e.t.Fatal(err)
	}
	e.layers, e.svc = ls, svc
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.svc.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *env) pull(ref string) Image {
	e.t.Helper()
	img, err := e.svc.Pull(context.Background(), ref, nil, nil)
	if err != nil {
		e.t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

// hostsFile writes the hosts.toml of registry host.
func (e *env) hostsFile(host, content string) string {
	e.t.Helper()
	dir := filepath.Join(e.cfg.RegistryConfigPath, host)
	writeFile(e.t, filepath.Join(dir, "hosts.toml"), content)
	return dir
}

// layerDirs lists committed layers and anything under the store's tmp/.
func (e *env) layerDirs() (committed, tmp []string) {
	e.t.Helper()
	dir := filepath.Join(e.root, "layers")
	ents, err := os.ReadDir(dir)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ent := range ents {
		if ent.Name() != "tmp" {
			committed = append(committed, ent.Name())
		}
	}
	tents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, ent := range tents {
		tmp = append(tmp, ent.Name())
	}
	return committed, tmp
}

// assertEmpty checks a failed pull left nothing: no record, no layer.
func (e *env) assertEmpty() {
	e.t.Helper()
	if imgs, _ := e.svc.List(""); len(imgs) != 0 {
		e.t.Errorf("images left: %+v", imgs)
	}
	// Removal of an abandoned unpack may finish just after the pull returns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		committed, tmp := e.layerDirs()
		if len(committed) == 0 && len(tmp) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("layer store not empty: layers %v, tmp %v", committed, tmp)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or fails the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want kind %v", err, kind)
	}
}

// smallImage is an OCI image of one small layer with a file marking it.
func smallImage(t *testing.T, mark string, c testkit.Compression) v1.Image {
	t.Helper()
	l := testkit.MustLayer(t, []testkit.Entry{testkit.Dir("etc/"), testkit.File("etc/mark", mark)}, c)
	return testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}, Env: []string{"MARK=" + mark}}, l)
}

func digestOf(t *testing.T, x interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func configDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func layerDigests(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, l := range ls {
		out = append(out, digestOf(t, l))
	}
	return out
}

// readLayerFile reads path from the top-most layer of img that has it.
func (e *env) readLayerFile(img Image, path string) string {
	e.t.Helper()
	for _, c := range slices.Backward(img.ChainIDs) {
		b, err := os.ReadFile(filepath.Join(e.layers.DiffDir(c), path))
		if err == nil {
			return string(b)
		}
	}
	e.t.Fatalf("%s not in any layer of %s", path, img.ID)
	return ""
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func hasPrefixAny(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
