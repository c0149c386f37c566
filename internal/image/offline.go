package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// This file is for tools that work on a root while no daemon runs (cradle
// check): the image records as New would read them, and the changes New
// would make, each a separate call.

// DBName is the image database under the image dir.
const DBName = "images.db"

// CorruptSuffix is appended to an images.db that cannot be opened, and
// bucketCorrupt keeps records that cannot be decoded: set aside, not lost.
const CorruptSuffix = ".corrupt"

var bucketCorrupt = []byte("corrupt")

// ErrCorruptDB says images.db itself is damaged (not one record in it).
var ErrCorruptDB = errors.New("image database is corrupt")

// ReadRecords reads every record of <dir>/images.db without changing it.
// bad are the keys of records that do not decode. A missing database is an
// empty one; a damaged one is ErrCorruptDB.
func ReadRecords(dir string) (imgs []Image, bad []string, err error) {
	path := filepath.Join(dir, DBName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorruptDB, path, err)
	}
	defer db.Close()
	// bbolt panics on some damaged pages rather than failing.
	defer func() {
		if p := recover(); p != nil {
			imgs, bad, err = nil, nil, fmt.Errorf("%w: %s: %v", ErrCorruptDB, path, p)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return cerr
		}
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			img := new(Image)
			if err := json.Unmarshal(v, img); err != nil || img.ID.String() != string(k) || img.ID.Validate() != nil {
				bad = append(bad, string(k))
				return nil
			}
			imgs = append(imgs, *img)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorruptDB, path, err)
	}
	return imgs, bad, nil
}

// SetAsideDB renames a damaged images.db; the next daemon starts an empty one.
func SetAsideDB(dir string) error {
	path := filepath.Join(dir, DBName)
	return os.Rename(path, path+CorruptSuffix)
}

// SetAsideRecords moves undecodable records into the bucket "corrupt".
func SetAsideRecords(dir string, keys []string) error {
	return update(dir, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		aside, err := tx.CreateBucketIfNotExists(bucketCorrupt)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if v := b.Get([]byte(k)); v != nil {
				if err := aside.Put([]byte(k), v); err != nil {
					return err
				}
			}
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DropRecords deletes the records of ids, as New drops images whose layers
// are missing.
func DropRecords(dir string, ids []digest.Digest) error {
	return update(dir, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		for _, id := range ids {
			if err := b.Delete([]byte(id.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

func update(dir string, fn func(*bolt.Tx) error) error {
	db, err := openDB(filepath.Join(dir, DBName))
	if err != nil {
		return err
	}
	return errors.Join(db.Update(fn), db.Close())
}
