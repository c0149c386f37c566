package cri

import (
	"path/filepath"

	"github.com/cradle-runtime/cradle/internal/userns"
)

// WithUserNamespaces probes, once at start-up, whether pods can have their
// own user namespace here: creating a mapped user namespace and an
// idmapped clone of a directory on root's filesystem, where the layers and
// writable layers live. Only then are RuntimeHandlerFeatures.user_namespaces
// reported, and only for handlers whose runtime is runc, which joins a user
// namespace by path as cradle's pods need (runsc and kata bring their own
// model). The reason for a failed probe is logged, since kubelet then
// silently keeps hostUsers=false pods off this node.
func (s *Server) WithUserNamespaces(root string) *Server {
	if err := userns.Detect(root); err != nil {
		s.log.Warn("user namespaces not available for pods", "root", root, "err", err)
		s.usernsOK = false
		return s
	}
	s.usernsOK = true
	return s
}

// usernsFor says whether handler ("" = the default) runs pods with their
// own user namespace.
func (s *Server) usernsFor(handler string) bool {
	if !s.usernsOK {
		return false
	}
	cfg := s.config()
	if handler == "" {
		handler = cfg.Runtime.DefaultHandler
	}
	h, ok := cfg.Runtime.Handlers[handler]
	return ok && filepath.Base(h.Path) == "runc"
}
