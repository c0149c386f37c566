// Package handlers holds the RuntimeClass handlers in force: each one's
// OCI runtime, the default handler and what each can do. A configuration
// reload swaps the whole set at once, so a call sees either the old set or
// the new one, never half of each.
package handlers

import (
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
)

// Snapshot is one generation of handlers. Never modify one that was
// passed to New or Swap: callers read it without a lock.
type Snapshot struct {
	// Default is the handler of pods without a RuntimeClass.
	Default string
	// Runtimes are every handler's runtime, retired ones included (a
	// retired handler's containers can only be stopped and removed).
	Runtimes map[string]*oci.Runtime
	// Features are the detected features of each usable handler; the
	// default handler's are also filed under "".
	Features map[string]spec.RuntimeFeatures
}

// Set is the handlers in force. Safe for concurrent use.
type Set struct{ cur atomic.Pointer[Snapshot] }

// New returns a Set holding s.
func New(s Snapshot) *Set {
	set := &Set{}
	set.cur.Store(&s)
	return set
}

// Static is a Set of runtimes with no detected features (tests).
func Static(def string, runtimes map[string]*oci.Runtime) *Set {
	return New(Snapshot{Default: def, Runtimes: runtimes})
}

// Load returns the snapshot in force.
func (s *Set) Load() Snapshot { return *s.cur.Load() }

// Swap puts next in force and returns the previous snapshot.
func (s *Set) Swap(next Snapshot) Snapshot { return *s.cur.Swap(&next) }

// Runtime returns the runtime of handler ("" = the default handler), or
// nil when there is none.
func (s *Set) Runtime(handler string) *oci.Runtime {
	cur := s.cur.Load()
	if handler == "" {
		handler = cur.Default
	}
	return cur.Runtimes[handler]
}

// All returns every runtime, retired ones included. Do not modify it.
func (s *Set) All() map[string]*oci.Runtime { return s.cur.Load().Runtimes }

// Default is the default handler's name.
func (s *Set) Default() string { return s.cur.Load().Default }

// Usable are the handlers new pods and containers may use, sorted.
func (s *Set) Usable() []string {
	cur := s.cur.Load()
	var names []string
	for _, name := range slices.Sorted(maps.Keys(cur.Runtimes)) {
		if !cur.Runtimes[name].Retired() {
			names = append(names, name)
		}
	}
	return names
}

// Features are the detected features of handler ("" = the default);
// an unknown handler has none.
func (s *Set) Features(handler string) spec.RuntimeFeatures {
	return s.cur.Load().Features[handler]
}
