package container

import (
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/fsusage"
)

// usageTTL bounds how stale FsUsage may be. Writable layers change with
// every write a container makes, so unlike the layer store there is no event
// to invalidate on; kubelet asks about every 10 s, and one walk per TTL keeps
// a node with many busy containers cheap.
const usageTTL = 5 * time.Second

type usageCache struct {
	mu            sync.Mutex
	at            time.Time
	bytes, inodes uint64
}

// FsUsage reports bytes and inodes used by containers' writable layers and
// records under <root>/containers, for ImageFsInfo's container filesystem.
func (m *Manager) FsUsage() (bytes, inodes uint64, err error) {
	c := &m.usage
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < usageTTL {
		return c.bytes, c.inodes, nil
	}
	bytes, inodes, err = fsusage.Walk(recordRoot(m.cfg.Root))
	if err != nil {
		return 0, 0, err
	}
	c.at, c.bytes, c.inodes = time.Now(), bytes, inodes
	return bytes, inodes, nil
}
