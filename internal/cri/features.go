package cri

import (
	"github.com/cradle-runtime/cradle/internal/spec"
)

// WithRuntimeFeatures reports the features detected per handler ("" being
// the default handler) in Status.
func (s *Server) WithRuntimeFeatures(f map[string]spec.RuntimeFeatures) *Server {
	s.features = f
	return s
}

// rroFor says whether the handler's runtime makes recursive read-only
// mounts; the container create path refuses them exactly when this is false.
func (s *Server) rroFor(handler string) bool {
	if s.handlerSet != nil {
		return s.handlerSet.Features(handler).RecursiveReadOnly
	}
	return s.features[handler].RecursiveReadOnly
}
