package image

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// On disk: <Dir>/images.db, bucket "images", key = image ID, value = the
// Image as JSON. The bucket "meta" holds the schema version.
var (
	bucketImages = []byte("images")
	bucketMeta   = []byte("meta")
	keyVersion   = []byte("version")
)

const schemaVersion = "1"

// index is the in-memory view every read is served from. Records are
// copy-on-write: a stored *Image is never modified, only replaced.
type index struct {
	byID     map[digest.Digest]*Image
	byTag    map[string]digest.Digest // docker.io/library/busybox:latest
	byDigest map[string]digest.Digest // name@digest, RepoDigests and name@ManifestDigest
}

func newIndex() *index {
	return &index{
		byID:     map[digest.Digest]*Image{},
		byTag:    map[string]digest.Digest{},
		byDigest: map[string]digest.Digest{},
	}
}

// digestKeys are the name@digest strings an image answers to: its
// RepoDigests and, for each repository, its platform manifest.
func digestKeys(img *Image) []string {
	keys := slices.Clone(img.RepoDigests)
	for _, rd := range img.RepoDigests {
		name, _, _ := strings.Cut(rd, "@")
		if img.ManifestDigest != "" {
			keys = append(keys, name+"@"+img.ManifestDigest.String())
		}
	}
	return keys
}

func (x *index) put(img *Image) {
	x.del(img.ID)
	x.byID[img.ID] = img
	for _, t := range img.RepoTags {
		x.byTag[t] = img.ID
	}
	for _, k := range digestKeys(img) {
		x.byDigest[k] = img.ID
	}
}

func (x *index) del(id digest.Digest) {
	old, ok := x.byID[id]
	if !ok {
		return
	}
	delete(x.byID, id)
	for _, t := range old.RepoTags {
		if x.byTag[t] == id {
			delete(x.byTag, t)
		}
	}
	for _, k := range digestKeys(old) {
		if x.byDigest[k] == id {
			delete(x.byDigest, k)
		}
	}
}

func openDB(path string) (*bolt.DB, error) {
	db, err := openBolt(path)
	if err != nil {
		return nil, err
	}
	if err := initSchema(db, path); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openBolt opens the file without writing to it.
func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5e9})
	if err != nil {
		return nil, fmt.Errorf("open image database %s: %w", path, err)
	}
	return db, nil
}

// initSchema creates the buckets of a new database and checks the schema
// version of an existing one.
func initSchema(db *bolt.DB, path string) error {
	return db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := string(meta.Get(keyVersion)); v {
		case "":
			if err := meta.Put(keyVersion, []byte(schemaVersion)); err != nil {
				return err
			}
		case schemaVersion:
		default:
			return errdefs.FailedPrecondition("image database %s has schema version %s; this cradle knows %s", path, v, schemaVersion)
		}
		_, err = tx.CreateBucketIfNotExists(bucketImages)
		return err
	})
}

// loadRecords reads every record; undecodable ones are returned as bad keys.
func loadRecords(db *bolt.DB) (imgs []*Image, bad []string, err error) {
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
			img := new(Image)
			if err := json.Unmarshal(v, img); err != nil || img.ID.String() != string(k) || img.ID.Validate() != nil {
				bad = append(bad, string(k))
				return nil
			}
			imgs = append(imgs, img)
			return nil
		})
	})
	return imgs, bad, err
}

// writeRecords puts and deletes records in one transaction.
func writeRecords(db *bolt.DB, put []*Image, del []digest.Digest) error {
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		for _, img := range put {
			v, err := json.Marshal(img)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(img.ID.String()), v); err != nil {
				return err
			}
		}
		for _, id := range del {
			if err := b.Delete([]byte(id.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

func deleteKeys(db *bolt.DB, keys []string) error {
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// cloneImage copies the slices a caller might be tempted to modify. Config
// is shared: treat it as read-only.
func cloneImage(img *Image) Image {
	c := *img
	c.RepoTags = slices.Clone(img.RepoTags)
	c.RepoDigests = slices.Clone(img.RepoDigests)
	c.ChainIDs = slices.Clone(img.ChainIDs)
	return c
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}
