package layer

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// usageCache holds the last walk's result, valid while Store.gen is unchanged.
type usageCache struct {
	valid         bool
	gen           uint64
	bytes, inodes uint64
}

// Usage returns bytes and inodes used by the layer store on disk.
//
// Bytes are allocated blocks (st_blocks*512, what du reports), so sparse
// files and filesystem block rounding count as the disk sees them; an inode
// with several hard links counts once. The result is cached until a layer is
// committed or removed, so repeated ImageFsInfo calls cost nothing; unpacks
// still in progress under tmp/ show up at their next commit or removal.
func (s *Store) Usage() (bytes, inodes uint64, err error) {
	s.usageMu.Lock()
	defer s.usageMu.Unlock()
	s.mu.Lock()
	gen, c := s.gen, s.usage
	s.mu.Unlock()
	if c.valid && c.gen == gen {
		return c.bytes, c.inodes, nil
	}
	bytes, inodes, err = diskUsage(s.dir)
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.usage = usageCache{valid: true, gen: gen, bytes: bytes, inodes: inodes}
	s.mu.Unlock()
	return bytes, inodes, nil
}

// diskUsage walks dir. Entries vanishing during the walk (a concurrent
// removal) are skipped.
func diskUsage(dir string) (bytes, inodes uint64, err error) {
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
