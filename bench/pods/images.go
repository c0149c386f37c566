package main

import (
	"archive/tar"
	"fmt"
	"os"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// Images of the benchmark, both built in-process and served by testkit's
// registry on 127.0.0.1.
const (
	workloadRepo = "bench/sleeper:1"
	pauseRepo    = "bench/pause:3.10"
)

// workloadCommand keeps the container running and lets it stop at once on
// SIGTERM: a plain `sleep` as PID 1 would ignore SIGTERM and every
// StopContainer would last its whole grace period. It logs workloadReady once
// its trap is set: a SIGTERM before that is ignored by PID 1 too, so teardown
// waits for the line (the faster a runtime starts, the likelier that race).
var workloadCommand = []string{"sh", "-c", "trap 'exit 0' TERM; echo " + workloadReady + "; sleep 3600 & wait"}

const workloadReady = "ready"

// catatonitPath is Debian's catatonit: a static C init whose -P mode is a
// pause process, as small as Kubernetes' own pause binary.
const catatonitPath = "/usr/bin/catatonit"

type benchImages struct {
	workload, pause string // references in the registry
}

// pushImages builds the workload image (busybox) and containerd's sandbox
// image (catatonit -P as /pause) and pushes both.
func pushImages(reg *testkit.Registry) (benchImages, error) {
	work, err := testkit.BusyboxImage(testkit.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		return benchImages{}, fmt.Errorf("busybox image: %w", err)
	}
	bin, err := os.ReadFile(catatonitPath)
	if err != nil {
		return benchImages{}, fmt.Errorf("pause image needs catatonit (apt-get install catatonit): %w", err)
	}
	layer, err := testkit.NewLayer([]testkit.Entry{{Name: "pause", Content: bin, Mode: 0o755, Type: tar.TypeReg}}, testkit.Gzip)
	if err != nil {
		return benchImages{}, err
	}
	pause, err := testkit.NewImage(testkit.ImageConfig{Entrypoint: []string{"/pause", "-P"}, User: "65535:65535"}, layer)
	if err != nil {
		return benchImages{}, err
	}
	if _, err := reg.Push(workloadRepo, work); err != nil {
		return benchImages{}, err
	}
	if _, err := reg.Push(pauseRepo, pause); err != nil {
		return benchImages{}, err
	}
	return benchImages{workload: reg.Ref(workloadRepo), pause: reg.Ref(pauseRepo)}, nil
}
