package benchkit

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Images of the pod benchmarks, both built in-process and served by
// testkit's registry on 127.0.0.1.
const (
	workloadRepo = "bench/sleeper:1"
	pauseRepo    = "bench/pause:3.10"
)

// WorkloadCommand keeps the container running and lets it stop at once on
// SIGTERM: a plain `sleep` as PID 1 would ignore SIGTERM and every
// StopContainer would last its whole grace period. It logs WorkloadReady
// once its trap is set: a SIGTERM before that is ignored by PID 1 too, so
// teardown waits for the line (the faster a runtime starts, the likelier
// that race).
var WorkloadCommand = []string{"sh", "-c", "trap 'exit 0' TERM; echo " + WorkloadReady + "; sleep 3600 & wait"}

// WorkloadReady is the line the workload logs once its SIGTERM trap is set.
const WorkloadReady = "ready"

// StopGrace is the grace period StopContainer gets, as kubelet passes the
// pod's terminationGracePeriodSeconds; the workload exits on SIGTERM, so
// reaching it means the runtime is slow.
const StopGrace = 30

// CatatonitPath is Debian's catatonit: a static C init whose -P mode is a
// pause process, as small as Kubernetes' own pause binary.
const CatatonitPath = "/usr/bin/catatonit"

// PodImages are the references of the pod benchmarks' images.
type PodImages struct {
	Workload, Pause string
}

// PushPodImages builds the workload image (busybox) and containerd's
// sandbox image (catatonit -P as /pause) and pushes both.
func PushPodImages(reg *testkit.Registry) (PodImages, error) {
	work, err := testkit.BusyboxImage(testkit.ImageConfig{Cmd: []string{"sh"}})
	if err != nil {
		return PodImages{}, fmt.Errorf("busybox image: %w", err)
	}
	bin, err := os.ReadFile(CatatonitPath)
	if err != nil {
		return PodImages{}, fmt.Errorf("pause image needs catatonit (apt-get install catatonit): %w", err)
	}
	layer, err := testkit.NewLayer([]testkit.Entry{{Name: "pause", Content: bin, Mode: 0o755, Type: tar.TypeReg}}, testkit.Gzip)
	if err != nil {
		return PodImages{}, err
	}
	pause, err := testkit.NewImage(testkit.ImageConfig{Entrypoint: []string{"/pause", "-P"}, User: "65535:65535"}, layer)
	if err != nil {
		return PodImages{}, err
	}
	if _, err := reg.Push(workloadRepo, work); err != nil {
		return PodImages{}, err
	}
	if _, err := reg.Push(pauseRepo, pause); err != nil {
		return PodImages{}, err
	}
	return PodImages{Workload: reg.Ref(workloadRepo), Pause: reg.Ref(pauseRepo)}, nil
}

// PullPodImages pulls the workload on d, and the sandbox image too when
// the runtime runs pause containers (kubelet's pods find it pulled too).
func PullPodImages(ctx context.Context, d *Daemon, imgs PodImages, pause bool) error {
	refs := []string{imgs.Workload}
	if pause {
		refs = append(refs, imgs.Pause)
	}
	for _, ref := range refs {
		if _, err := d.Images.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err != nil {
			return d.Explain(fmt.Errorf("%s pull %s: %w", d.Name, ref, err))
		}
	}
	return nil
}

// PodConfig is a kubelet-like sandbox config. PID namespace per container
// (kubelet's default): cradle then runs no pause process at all. An empty
// cgroupParent leaves the runtime's default.
func PodConfig(name, logDir, cgroupParent string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: logDir,
		Labels:       map[string]string{"app": "bench", "io.kubernetes.pod.name": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_POD,
					Pid:     runtimeapi.NamespaceMode_CONTAINER,
					Ipc:     runtimeapi.NamespaceMode_POD,
				},
			},
		},
	}
}

// WorkloadContainer is the one container of a benchmark pod; it logs to
// app.log in the pod's log directory.
func WorkloadContainer(image string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  WorkloadCommand,
		LogPath:  "app.log",
		Labels:   map[string]string{"io.kubernetes.container.name": "app"},
	}
}

// WaitWorkloadReady polls the container's CRI log until the workload says
// its SIGTERM trap is set (not timed: kubelet does not stop what it just
// started).
func WaitWorkloadReady(ctx context.Context, logPath string) error {
	const limit = 30 * time.Second
	deadline := time.Now().Add(limit)
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		if b, err := os.ReadFile(logPath); err == nil && bytes.Contains(b, []byte(" "+WorkloadReady)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no %q within %v", logPath, WorkloadReady, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// RemoveAllPods tears down every pod the runtime knows, for the clean-up at
// the end or after a failure; it returns the first error and carries on.
func RemoveAllPods(ctx context.Context, rt internalapi.RuntimeService) error {
	pods, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	var first error
	for _, s := range pods {
		ctrs, _ := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: s.Id})
		for _, c := range ctrs {
			if err := rt.StopContainer(ctx, c.Id, 0); err != nil && first == nil {
				first = err
			}
		}
		if err := rt.StopPodSandbox(ctx, s.Id); err != nil && first == nil {
			first = err
		}
		if err := rt.RemovePodSandbox(ctx, s.Id); err != nil && first == nil {
			first = err
		}
	}
	return first
}
