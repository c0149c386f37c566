package image

import (
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// registrySettings are the pull settings a configuration reload may change.
type registrySettings struct {
	hosts         *Hosts
	maxConcurrent int
	stall         time.Duration
}

// SetRegistry applies new registry settings to the pulls that start from
// now on; a pull in flight finishes with the settings it started with.
// A new hosts.toml directory gets a fresh cache; the same one keeps its
// cache, which revalidates every file on use anyway.
func (s *Service) SetRegistry(configPath string, maxConcurrent int, stall time.Duration) error {
	if stall < 0 {
		return errdefs.InvalidArgument("image service: negative stall timeout %s", stall)
	}
	if maxConcurrent <= 0 {
		maxConcurrent = DefaultMaxConcurrentDownloads
	}
	old := s.reg.Load()
	next := &registrySettings{hosts: old.hosts, maxConcurrent: maxConcurrent, stall: stall}
	if configPath != old.hosts.dir {
		next.hosts = NewHosts(configPath)
	}
	s.reg.Store(next)
	if next.hosts != old.hosts {
		// Only idle connections go; a pull still using the old hosts keeps
		// its own.
		old.hosts.Close()
	}
	return nil
}

// registry returns the settings in force (tests).
func (s *Service) registry() registrySettings { return *s.reg.Load() }
