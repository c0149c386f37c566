package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stopGrace is the grace period StopContainer gets, as kubelet passes the
// pod's terminationGracePeriodSeconds; the workload exits on SIGTERM, so
// reaching it means the runtime is slow.
const stopGrace = 30

// podRunner starts and tears down single-container pods on one runtime the
// way kubelet does.
type podRunner struct {
	d      *daemon
	image  string
	logDir string
	seq    int
}

type pod struct {
	id, container string
	log           string // the container's log file
}

// config is a kubelet-like sandbox config. PID namespace per container
// (kubelet's default): cradle then runs no pause process at all.
func (r *podRunner) config(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(r.logDir, name),
		Labels:       map[string]string{"app": "bench", "io.kubernetes.pod.name": name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_POD,
				Pid:     runtimeapi.NamespaceMode_CONTAINER,
				Ipc:     runtimeapi.NamespaceMode_POD,
			},
		}},
	}
}

// nextName is a fresh pod name; callers in parallel take names first.
func (r *podRunner) nextName() string {
	r.seq++
	return fmt.Sprintf("%s-%03d", r.d.Name, r.seq)
}

// prepare makes the pod's log directory, as kubelet does before it asks
// for the sandbox (not timed).
func (r *podRunner) prepare(name string) error {
	return os.MkdirAll(filepath.Join(r.logDir, name), 0o755)
}

// start runs the pod and its container and returns how long the three
// calls took together.
func (r *podRunner) start(ctx context.Context, name string) (pod, time.Duration, error) {
	cfg := r.config(name)
	t0 := time.Now()
	id, err := r.d.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		return pod{}, 0, r.d.Explain(fmt.Errorf("%s RunPodSandbox %s: %w", r.d.Name, name, err))
	}
	p := pod{id: id}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: r.image},
		Command:  workloadCommand,
		LogPath:  "app.log",
		Labels:   map[string]string{"io.kubernetes.container.name": "app"},
	}
	cid, err := r.d.Runtime.CreateContainer(ctx, id, cc, cfg)
	if err != nil {
		return p, 0, r.d.Explain(fmt.Errorf("%s CreateContainer in %s: %w", r.d.Name, name, err))
	}
	p.container = cid
	p.log = filepath.Join(cfg.LogDirectory, cc.LogPath)
	if err := r.d.Runtime.StartContainer(ctx, cid); err != nil {
		return p, 0, r.d.Explain(fmt.Errorf("%s StartContainer in %s: %w", r.d.Name, name, err))
	}
	return p, time.Since(t0), nil
}

// waitReady polls the container's log until the workload says its SIGTERM
// trap is set (not timed: kubelet does not stop what it just started).
func (r *podRunner) waitReady(ctx context.Context, p pod) error {
	deadline := time.Now().Add(30 * time.Second)
	for delay := time.Millisecond; ; delay = min(2*delay, 20*time.Millisecond) {
		if b, err := os.ReadFile(p.log); err == nil && bytes.Contains(b, []byte(" "+workloadReady)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: container %s did not log %q within 30s", r.d.Name, p.container, workloadReady)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// teardown follows kubelet's order: stop the container with its grace
// period, stop the sandbox, remove it (which removes the container).
func (r *podRunner) teardown(ctx context.Context, p pod) (time.Duration, error) {
	if p.container != "" {
		if err := r.waitReady(ctx, p); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	if p.container != "" {
		if err := r.d.Runtime.StopContainer(ctx, p.container, stopGrace); err != nil {
			return 0, r.d.Explain(fmt.Errorf("%s StopContainer %s: %w", r.d.Name, p.container, err))
		}
	}
	if err := r.d.Runtime.StopPodSandbox(ctx, p.id); err != nil {
		return 0, r.d.Explain(fmt.Errorf("%s StopPodSandbox %s: %w", r.d.Name, p.id, err))
	}
	if err := r.d.Runtime.RemovePodSandbox(ctx, p.id); err != nil {
		return 0, r.d.Explain(fmt.Errorf("%s RemovePodSandbox %s: %w", r.d.Name, p.id, err))
	}
	return time.Since(t0), nil
}

// removeAll tears down every pod the runtime knows, for the clean-up at the
// end or after a failure; it returns the first error and carries on.
func (r *podRunner) removeAll(ctx context.Context) error {
	pods, err := r.d.Runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return r.d.Explain(err)
	}
	var first error
	for _, s := range pods {
		ctrs, _ := r.d.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: s.Id})
		for _, c := range ctrs {
			if err := r.d.Runtime.StopContainer(ctx, c.Id, 0); err != nil && first == nil {
				first = err
			}
		}
		if err := r.d.Runtime.StopPodSandbox(ctx, s.Id); err != nil && first == nil {
			first = err
		}
		if err := r.d.Runtime.RemovePodSandbox(ctx, s.Id); err != nil && first == nil {
			first = err
		}
	}
	return first
}
