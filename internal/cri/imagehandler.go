package cri

import (
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Every runtime handler shares cradle's one image store (images are
// unpacked once, into plain overlay lower dirs, which every runc-compatible
// runtime can use). So ImageSpec.runtime_handler selects nothing: a
// configured handler is accepted and echoed back in Image.spec, an unknown
// one is refused as the proto asks, and removing an image removes it for
// every handler.

// checkImageHandler refuses an image request naming a handler cradle does
// not run.
func (s *Server) checkImageHandler(rpc string, spec *runtimeapi.ImageSpec) error {
	if err := s.checkRuntimeHandler(spec.GetRuntimeHandler()); err != nil {
		return fmt.Errorf("%s: %w", rpc, err)
	}
	return nil
}

// withHandler reports the image as seen by the request's handler.
func withHandler(img *runtimeapi.Image, req *runtimeapi.ImageSpec) *runtimeapi.Image {
	if h := req.GetRuntimeHandler(); h != "" {
		img.Spec.RuntimeHandler = h
	}
	return img
}
