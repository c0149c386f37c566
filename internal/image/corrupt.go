package image

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// errCorrupt marks an images.db that cannot be read: garbage, truncated,
// damaged pages. The store sets such a file aside and starts empty rather
// than refusing to start: the images can be pulled again, and the layers
// only its records held are pruned like any other unheld layer.
var errCorrupt = errors.New("image database is damaged")

// guarded runs fn, turning a panic or a memory fault (bbolt reads its file
// through mmap: a truncated file faults, a damaged page panics) into an
// errCorrupt.
func guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errCorrupt, r)
		}
	}()
	return fn()
}

// corruptOpenError says whether bolt.Open's error means the file's content
// is bad, as opposed to the file being locked, unreadable or on a full or
// read-only disk — conditions to report, not to "repair" by discarding data.
func corruptOpenError(err error) bool {
	return errors.Is(err, errCorrupt) || errors.Is(err, berrors.ErrInvalid) ||
		errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) ||
		errors.Is(err, berrors.ErrInvalidMapping) || strings.Contains(err.Error(), "file size too small")
}

// checkDB walks every page of db (bbolt's own consistency check), so damage
// is found at start-up rather than by a later read or write. The file must
// first hold every page the meta page counts: bbolt's check runs in a
// goroutine of its own, where reading past the end of a truncated file
// through the mmap would be a fatal fault rather than a recoverable panic.
func checkDB(db *bolt.DB, path string) error {
	return guarded(func() error {
		return db.View(func(tx *bolt.Tx) error {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			if tx.Size() > fi.Size() {
				return fmt.Errorf("%w: truncated: its pages need %d bytes, the file has %d", errCorrupt, tx.Size(), fi.Size())
			}
			var errs []error
			for err := range tx.Check() {
				errs = append(errs, err)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w: %w", errCorrupt, errors.Join(errs...))
			}
			return nil
		})
	})
}

// setAside renames a damaged database to <path>.corrupt (replacing an older
// one) so that a person can look at it, and a fresh one takes its place.
func setAside(path string) (string, error) {
	aside := path + ".corrupt"
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("set damaged image database aside: %w", err)
	}
	return aside, nil
}
