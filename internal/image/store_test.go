package image

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestRestartKeepsImagesAndDropsBrokenOnes(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	a, b, _ := sharedBaseImages(t, 64<<10)
	r.MustPush(t, "a:latest", a)
	r.MustPush(t, "b:latest", b)
	imgA := e.pull(r.Ref("a"))
	imgB := e.pull(r.Ref("b"))
	if err := e.svc.SetPinned(r.Ref("a"), true); err != nil {
		t.Fatal(err)
	}

	e.restart()
	got, ok, err := e.svc.Get(r.Ref("a"))
	if err != nil || !ok {
		t.Fatalf("a after restart: %v %v", ok, err)
	}
	imgA.Pinned = true
	if got.PulledAt.Equal(imgA.PulledAt) {
		got.PulledAt = imgA.PulledAt // monotonic clock reading is not stored
	}
	if !reflect.DeepEqual(got, imgA) {
		t.Errorf("a after restart:\n%+v\nwant\n%+v", got, imgA)
	}
	if got, _, _ := e.svc.Get(r.Ref("b")); got.ID != imgB.ID {
		t.Errorf("b after restart: %v", got.ID)
	}

	// b's own layer disappears behind our back.
	e.svc.Close()
	if err := os.RemoveAll(filepath.Join(e.root, "layers", imgB.ChainIDs[1].Encoded())); err != nil {
		t.Fatal(err)
	}
	e.open()
	if _, ok, _ := e.svc.Get(r.Ref("b")); ok {
		t.Fatal("an image whose layer is gone is still served")
	}
	if _, ok, _ := e.svc.Get(r.Ref("a")); !ok {
		t.Fatal("an intact image was dropped")
	}
	if _, ok := e.layers.Get(imgA.ChainIDs[0]); !ok {
		t.Error("the shared base went with the broken image")
	}
	if committed, _ := e.layerDirs(); len(committed) != 2 {
		t.Errorf("layers %v, want a's two", committed)
	}
	// The drop is recorded, not repeated at every start.
	e.restart()
	if list, _ := e.svc.List(""); len(list) != 1 || list[0].ID != imgA.ID {
		t.Errorf("after a second restart: %+v", list)
	}
	e.svc.Close()
	db, err := openDB(filepath.Join(e.cfg.Dir, "images.db"))
	if err != nil {
		t.Fatal(err)
	}
	recs, bad, _ := loadRecords(db)
	db.Close()
	if len(recs) != 1 || len(bad) != 0 {
		t.Errorf("records on disk: %d (+%d bad)", len(recs), len(bad))
	}
	e.open()
}

func TestRemove(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	src := smallImage(t, "rm", testkit.Gzip)
	d := r.MustPush(t, "app:v1", src)
	r.MustPush(t, "app:v2", src)
	name := r.Host + "/app"

	for _, by := range []func(Image) string{
		func(Image) string { return name + ":v2" },
		func(img Image) string { return img.ID.String() },
		func(img Image) string { return img.ID.Encoded()[:6] },
		func(Image) string { return name + "@" + d.String() },
	} {
		e.pull(r.Ref("app:v1"))
		img := e.pull(r.Ref("app:v2"))
		if !reflect.DeepEqual(img.RepoTags, []string{name + ":v1", name + ":v2"}) {
			t.Fatalf("tags of one image pulled twice: %v", img.RepoTags)
		}
		ref := by(img)
		if err := e.svc.Remove(ref); err != nil {
			t.Fatalf("Remove(%s): %v", ref, err)
		}
		if _, ok, _ := e.svc.Get(name + ":v1"); ok {
			t.Errorf("Remove(%s) left the other tag", ref)
		}
		// Two pulls took two references; removal must free the layer.
		e.assertEmpty()
		if err := e.svc.Remove(ref); err != nil {
			t.Errorf("second Remove(%s): %v", ref, err)
		}
	}
	if err := e.svc.Remove("Bad Ref!"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Remove of a malformed ref: %v", err)
	}
	if err := e.svc.SetPinned("nothere", true); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("SetPinned of an absent image: %v", err)
	}
}

// A tag moves to the image pulled last; the old image keeps its digest
// reference, as containerd and Docker leave a dangling image.
func TestTagMovesToNewImage(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t)
	name := r.Host + "/app"
	d1 := r.MustPush(t, "app:latest", smallImage(t, "one", testkit.Gzip))
	old := e.pull(r.Ref("app"))
	r.MustPush(t, "app:latest", smallImage(t, "two", testkit.Gzip))
	cur := e.pull(r.Ref("app"))
	if old.ID == cur.ID {
		t.Fatal("test images are equal")
	}
	for i := 0; i < 2; i++ {
		got, _, _ := e.svc.Get(name + ":latest")
		if got.ID != cur.ID {
			t.Errorf("tag points to %s", got.ID)
		}
		o, ok, _ := e.svc.Get(old.ID.String())
		if !ok || len(o.RepoTags) != 0 || !reflect.DeepEqual(o.RepoDigests, []string{name + "@" + d1.String()}) {
			t.Errorf("old image: %v %+v", ok, o)
		}
		e.restart()
	}
	if err := e.svc.Remove(old.ID.String()); err != nil {
		t.Fatal(err)
	}
	if got := e.readLayerFile(cur, "etc/mark"); got != "two" {
		t.Errorf("current image damaged: %q", got)
	}
}

// When an image loses its last tag and digest to a newer pull, it goes, with
// its layers. Here the node's platform changed between two pulls of one index.
func TestImageLeftWithoutNamesIsRemoved(t *testing.T) {
	r := testkit.NewRegistry(t)
	amd := testkit.MustImage(t, testkit.ImageConfig{Architecture: "amd64"}, testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", "amd64")}, testkit.Gzip))
	arm := testkit.MustImage(t, testkit.ImageConfig{Architecture: "arm64"}, testkit.MustLayer(t, []testkit.Entry{testkit.File("arch", "arm64")}, testkit.Gzip))
	r.MustPushIndex(t, "multi:latest", testkit.MustIndex(t, amd, arm))

	e := newEnv(t, func(c *Config) { c.Platform = ocispec.Platform{Architecture: "amd64"} })
	first := e.pull(r.Ref("multi"))
	e.svc.Close()
	e.cfg.Platform = ocispec.Platform{Architecture: "arm64"}
	e.open()
	second := e.pull(r.Ref("multi"))
	if _, ok, _ := e.svc.Get(first.ID.String()); ok {
		t.Error("an image with no name left is still there")
	}
	if _, ok := e.layers.Get(first.ChainIDs[0]); ok {
		t.Error("its layer is still there")
	}
	if got, _, _ := e.svc.Get(r.Ref("multi")); got.ID != second.ID {
		t.Errorf("tag points to %s", got.ID)
	}
}

func TestLookupByIDPrefix(t *testing.T) {
	s := &Service{idx: newIndex()}
	for _, hex := range []string{
		"abc1000000000000000000000000000000000000000000000000000000000000",
		"abc2000000000000000000000000000000000000000000000000000000000000",
		"def0000000000000000000000000000000000000000000000000000000000000",
	} {
		s.idx.put(&Image{ID: digest.NewDigestFromEncoded(digest.SHA256, hex)})
	}
	if _, _, err := s.Get("abc"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if img, ok, err := s.Get("abc2"); !ok || err != nil || img.ID.Encoded()[:4] != "abc2" {
		t.Errorf("unique prefix: %v %v %v", img.ID, ok, err)
	}
	if img, ok, _ := s.Get("sha256:def"); !ok || img.ID.Encoded()[:3] != "def" {
		t.Errorf("prefix with algorithm: %v", ok)
	}
	if _, ok, err := s.Get("de"); ok || err != nil {
		t.Errorf("prefix below the minimum: %v %v", ok, err)
	}
	if _, _, err := s.Get(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty: %v", err)
	}
}
