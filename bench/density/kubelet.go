package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
)

// kubelet is a standalone kubelet (no API server) whose pods are the static
// manifests in its manifest dir.
type kubelet struct {
	bin, dir, socket string
	readOnlyPort     int
	cmd              *exec.Cmd
	done             chan struct{}
}

func (k *kubelet) manifests() string { return filepath.Join(k.dir, "manifests") }

// config is kubelet's defaults wherever they touch the runtime (PLEG relist
// every second, sync every minute, container stats from CRI with CPU and
// memory from cadvisor, as PodAndContainerStatsFromCRI is off by default), plus what a standalone kubelet
// on this host needs: cgroupfs, cgroup v1 allowed, no swap check, ports of
// its own on 127.0.0.1, its pod logs under dir.
func (k *kubelet) config(ports [3]int, maxPods int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
staticPodPath: %s
fileCheckFrequency: 1s
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: %d
healthzBindAddress: 127.0.0.1
healthzPort: %d
podLogsDir: %s
maxPods: %d
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "50Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`, k.manifests(), k.socket, ports[0], ports[1], ports[2], filepath.Join(k.dir, "pod-logs"), maxPods)
}

// freePorts asks the kernel for n ports free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// start runs kubelet and waits until its read-only port answers.
func (k *kubelet) start(ctx context.Context, maxPods int) error {
	for _, d := range []string{k.manifests(), filepath.Join(k.dir, "root"), filepath.Join(k.dir, "pod-logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	k.readOnlyPort = ports[1]
	cfg := filepath.Join(k.dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(k.config([3]int(ports), maxPods)), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(k.dir, "kubelet.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	k.cmd = exec.Command(k.bin, "--config", cfg, "--root-dir", filepath.Join(k.dir, "root"), "--hostname-override", "density-node")
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := k.cmd.Start(); err != nil {
		return err
	}
	k.done = make(chan struct{})
	go func() { _ = k.cmd.Wait(); close(k.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := k.pods(ctx); err == nil {
			return nil
		}
		select {
		case <-k.done:
			return fmt.Errorf("kubelet exited: %s", k.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubelet does not serve its read-only port within 90s: %s", k.logTail())
		}
	}
}

func (k *kubelet) logTail() string {
	b, _ := os.ReadFile(filepath.Join(k.dir, "kubelet.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// stop SIGTERMs kubelet, then SIGKILLs it after 20 s, and undoes the
// bind mount kubelet makes of its root dir (to share it rshared).
func (k *kubelet) stop() {
	if k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(20 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
	root := filepath.Join(k.dir, "root")
	for syscall.Unmount(root, 0) == nil {
	}
}

func (k *kubelet) pid() int { return k.cmd.Process.Pid }

// podList is the part of kubelet's /pods answer the benchmark reads.
type podList struct {
	Items []struct {
		Metadata struct{ Name string }
		Status   struct {
			Phase             string
			ContainerStatuses []struct{ Ready bool }
		}
	}
}

// pods reads kubelet's view of its pods from the read-only port.
func (k *kubelet) pods(ctx context.Context) (podList, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/pods", k.readOnlyPort), nil)
	if err != nil {
		return podList{}, err
	}
	resp, err := noProxy.Do(req)
	if err != nil {
		return podList{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return podList{}, fmt.Errorf("kubelet /pods: %s", resp.Status)
	}
	var l podList
	return l, json.NewDecoder(resp.Body).Decode(&l)
}

var noProxy = &http.Client{Transport: &http.Transport{Proxy: nil}}

// running counts the pods that are Running with every container ready.
func (l podList) running() int {
	n := 0
	for _, p := range l.Items {
		if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
			continue
		}
		ready := true
		for _, c := range p.Status.ContainerStatuses {
			ready = ready && c.Ready
		}
		if ready {
			n++
		}
	}
	return n
}

// writeManifests places n static pods at once: each written to a temp name
// and renamed, so kubelet never reads half a file.
func (k *kubelet) writeManifests(n int, image string) error {
	cmd, err := json.Marshal(benchkit.WorkloadCommand)
	if err != nil {
		return err
	}
	for i := range n {
		name := fmt.Sprintf("density-%03d", i)
		body := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  terminationGracePeriodSeconds: %d
  containers:
  - name: sleeper
    image: %s
    imagePullPolicy: IfNotPresent
    command: %s
`, name, benchkit.StopGrace, image, cmd)
		tmp := filepath.Join(k.manifests(), "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(k.manifests(), name+".yaml")); err != nil {
			return err
		}
	}
	return nil
}

// removeManifests deletes every static pod at once.
func (k *kubelet) removeManifests() error {
	ms, err := filepath.Glob(filepath.Join(k.manifests(), "*.yaml"))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := os.Remove(m); err != nil {
			return err
		}
	}
	return nil
}
