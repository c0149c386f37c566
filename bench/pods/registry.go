package main

import (
	"fmt"

	"github.com/cradle-runtime/cradle/internal/testkit"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// startRegistry serves the benchmark's images on 127.0.0.1.
func startRegistry() (*testkit.Registry, error) {
	reg, err := testkit.StartRegistry()
	if err != nil {
		return nil, fmt.Errorf("start registry: %w", err)
	}
	return reg, nil
}

func imageSpec(ref string) *runtimeapi.ImageSpec { return &runtimeapi.ImageSpec{Image: ref} }
