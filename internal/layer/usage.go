package layer

import (
	"github.com/cradle-runtime/cradle/internal/fsusage"
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
	bytes, inodes, err = fsusage.Walk(s.dir)
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.usage = usageCache{valid: true, gen: gen, bytes: bytes, inodes: inodes}
	s.mu.Unlock()
	return bytes, inodes, nil
}
