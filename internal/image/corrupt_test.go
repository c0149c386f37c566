package image

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// A damaged images.db does not stop the store from opening: it is set aside
// as images.db.corrupt, the store starts empty, the layers that only its
// records held are pruned, and the images can be pulled again.
func TestCorruptDatabaseIsSetAside(t *testing.T) {
	damage := map[string]func(t *testing.T, path string){
		"garbage": func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("not a bolt database "), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		"truncated-to-a-page": func(t *testing.T, path string) { truncate(t, path, 4096) },
		"empty":               func(t *testing.T, path string) { truncate(t, path, 0) },
		// The meta pages survive; the pages they point to are gone.
		"truncated-after-meta": func(t *testing.T, path string) { truncate(t, path, 2*int64(os.Getpagesize())) },
		// The last page bbolt counts is gone (the file may have slack
		// beyond it, which is no damage).
		"truncated-below-high-water-mark": func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var hwm int64
			_ = db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil })
			db.Close()
			truncate(t, path, hwm-int64(os.Getpagesize()))
		},
		"truncated-to-3-pages": func(t *testing.T, path string) { truncate(t, path, 3*int64(os.Getpagesize())) },
		"meta-pages-zeroed": func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 2*os.Getpagesize()), 0); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			r := testkit.NewRegistry(t)
			r.MustPush(t, "a:latest", smallImage(t, "a", testkit.Gzip))
			img := e.pull(r.Ref("a"))
			if err := e.svc.Close(); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(e.cfg.Dir, "images.db")
			fn(t, db)
			damaged, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}

			e.open()
			if kept, err := os.ReadFile(db + ".corrupt"); err != nil || !bytes.Equal(kept, damaged) {
				t.Errorf("the damaged database was not kept as images.db.corrupt (err %v)", err)
			}
			if _, ok, _ := e.svc.Get(r.Ref("a")); ok {
				t.Error("an image of the damaged database is served")
			}
			if committed, tmp := e.layerDirs(); len(committed)+len(tmp) != 0 {
				t.Errorf("layers no record holds were not pruned: %v %v", committed, tmp)
			}
			again := e.pull(r.Ref("a"))
			if again.ID != img.ID {
				t.Errorf("re-pull: %s, want %s", again.ID, img.ID)
			}
			e.restart()
			if _, ok, _ := e.svc.Get(r.Ref("a")); !ok {
				t.Error("the re-pulled image is gone after a restart")
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}
