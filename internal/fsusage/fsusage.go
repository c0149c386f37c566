// Package fsusage measures what a directory tree uses on disk, the way du
// does: allocated blocks and inodes, hard links counted once.
package fsusage

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// Walk returns the bytes (st_blocks*512) and inodes used under dir. Entries vanishing during the walk (a concurrent
// removal) are skipped.
func Walk(dir string) (bytes, inodes uint64, err error) {
	type inode struct{ dev, ino uint64 }
	linked := map[inode]bool{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !fi.IsDir() {
			key := inode{uint64(st.Dev), st.Ino}
			if linked[key] {
				return nil
			}
			linked[key] = true
		}
		bytes += uint64(st.Blocks) * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}
