package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Requests shaped like kubelet's (1.37) for a pod with one container: the
// limit tests check that nothing kubelet sends is refused, and the fuzz
// targets start from them.

const (
	kubeletPodUID = "5f0a4bb6-7a8a-4c4e-9c55-3b1f0ad0f3a1"
	kubeletPodID  = "0c4b4b1d3bd1b1e1f0d6cbb7e3c9ba5f2d0c0b7a8e4c2f1a9b8d7c6e5f4a3b2c"
	kubeletCtrID  = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
)

func kubeletPodConfig() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-7d4b9c8f6-x2k4p", Namespace: "default", Uid: kubeletPodUID, Attempt: 0},
		Hostname:     "web-7d4b9c8f6-x2k4p",
		LogDirectory: "/var/log/pods/default_web-7d4b9c8f6-x2k4p_" + kubeletPodUID,
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
			Options:  []string{"ndots:5"},
		},
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080}},
		Labels: map[string]string{
			"app": "web", "pod-template-hash": "7d4b9c8f6",
			"io.kubernetes.pod.name": "web-7d4b9c8f6-x2k4p", "io.kubernetes.pod.namespace": "default",
			"io.kubernetes.pod.uid": kubeletPodUID,
		},
		Annotations: map[string]string{
			"kubernetes.io/config.seen": "2026-12-07T22:00:00.000000000Z", "kubernetes.io/config.source": "api",
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod" + kubeletPodUID,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
			Sysctls:   map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			Overhead:  &runtimeapi.LinuxContainerResources{},
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2},
		},
	}
}

func kubeletContainerConfig() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: "web", Attempt: 0},
		Image:      &runtimeapi.ImageSpec{Image: "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", UserSpecifiedImage: "registry.example:5000/web:1.0"},
		Command:    []string{"/bin/sh", "-c"},
		Args:       []string{"trap 'exit 0' TERM; while true; do sleep 1; done"},
		WorkingDir: "/app",
		Envs: []*runtimeapi.KeyValue{
			{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}, {Key: "KUBERNETES_SERVICE_PORT", Value: []byte("443")},
			{Key: "PATH", Value: []byte("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")},
		},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: "/var/lib/kubelet/pods/" + kubeletPodUID + "/volumes/kubernetes.io~projected/kube-api-access-abcde", Readonly: true, SelinuxRelabel: true},
			{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/" + kubeletPodUID + "/etc-hosts"},
			{ContainerPath: "/dev/termination-log", HostPath: "/var/lib/kubelet/pods/" + kubeletPodUID + "/containers/web/0a1b2c3d"},
		},
		Labels: map[string]string{
			"io.kubernetes.container.name": "web", "io.kubernetes.pod.name": "web-7d4b9c8f6-x2k4p",
			"io.kubernetes.pod.namespace": "default", "io.kubernetes.pod.uid": kubeletPodUID,
		},
		Annotations: map[string]string{
			"io.kubernetes.container.hash": "8a5b3c1d", "io.kubernetes.container.restartCount": "0",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File", "io.kubernetes.pod.terminationGracePeriod": "30",
			"io.kubernetes.container.ports": `[{"containerPort":8080,"protocol":"TCP"}]`,
		},
		LogPath: "web/0.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000,
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}, Unified: map[string]string{"memory.oom.group": "1"}},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Capabilities:     &runtimeapi.Capability{DropCapabilities: []string{"NET_RAW"}},
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD},
				RunAsUser:        &runtimeapi.Int64Value{Value: 1000},
				MaskedPaths:      []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"},
				ReadonlyPaths:    []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
				Seccomp:          &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
		},
	}
}

// kubeletRequests are one request of every RPC, by full method name, as
// kubelet (or crictl, for the RPCs kubelet does not call) sends them.
func kubeletRequests() map[string]any {
	image := &runtimeapi.ImageSpec{Image: "registry.example:5000/web:1.0"}
	ctrFilter := &runtimeapi.ContainerFilter{PodSandboxId: kubeletPodID, LabelSelector: map[string]string{"io.kubernetes.pod.uid": kubeletPodUID}}
	podFilter := &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}
	rs, is := "/runtime.v1.RuntimeService/", "/runtime.v1.ImageService/"
	return map[string]any{
		rs + "Version":                   &runtimeapi.VersionRequest{Version: "v1"},
		rs + "RunPodSandbox":             &runtimeapi.RunPodSandboxRequest{Config: kubeletPodConfig()},
		rs + "StopPodSandbox":            &runtimeapi.StopPodSandboxRequest{PodSandboxId: kubeletPodID},
		rs + "RemovePodSandbox":          &runtimeapi.RemovePodSandboxRequest{PodSandboxId: kubeletPodID},
		rs + "PodSandboxStatus":          &runtimeapi.PodSandboxStatusRequest{PodSandboxId: kubeletPodID, Verbose: true},
		rs + "ListPodSandbox":            &runtimeapi.ListPodSandboxRequest{Filter: podFilter},
		rs + "CreateContainer":           &runtimeapi.CreateContainerRequest{PodSandboxId: kubeletPodID, Config: kubeletContainerConfig(), SandboxConfig: kubeletPodConfig()},
		rs + "StartContainer":            &runtimeapi.StartContainerRequest{ContainerId: kubeletCtrID},
		rs + "StopContainer":             &runtimeapi.StopContainerRequest{ContainerId: kubeletCtrID, Timeout: 30},
		rs + "RemoveContainer":           &runtimeapi.RemoveContainerRequest{ContainerId: kubeletCtrID},
		rs + "ListContainers":            &runtimeapi.ListContainersRequest{Filter: ctrFilter},
		rs + "ContainerStatus":           &runtimeapi.ContainerStatusRequest{ContainerId: kubeletCtrID},
		rs + "UpdateContainerResources":  &runtimeapi.UpdateContainerResourcesRequest{ContainerId: kubeletCtrID, Linux: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}},
		rs + "ReopenContainerLog":        &runtimeapi.ReopenContainerLogRequest{ContainerId: kubeletCtrID},
		rs + "ExecSync":                  &runtimeapi.ExecSyncRequest{ContainerId: kubeletCtrID, Cmd: []string{"cat", "/tmp/healthy"}, Timeout: 1},
		rs + "Exec":                      &runtimeapi.ExecRequest{ContainerId: kubeletCtrID, Cmd: []string{"sh"}, Stdin: true, Stdout: true, Tty: true},
		rs + "Attach":                    &runtimeapi.AttachRequest{ContainerId: kubeletCtrID, Stdout: true, Stderr: true},
		rs + "PortForward":               &runtimeapi.PortForwardRequest{PodSandboxId: kubeletPodID, Port: []int32{8080}},
		rs + "ContainerStats":            &runtimeapi.ContainerStatsRequest{ContainerId: kubeletCtrID},
		rs + "ListContainerStats":        &runtimeapi.ListContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{PodSandboxId: kubeletPodID}},
		rs + "PodSandboxStats":           &runtimeapi.PodSandboxStatsRequest{PodSandboxId: kubeletPodID},
		rs + "ListPodSandboxStats":       &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "web"}}},
		rs + "UpdateRuntimeConfig":       &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.1.0/24,fd00:10:244:1::/64"}}},
		rs + "Status":                    &runtimeapi.StatusRequest{},
		rs + "CheckpointContainer":       &runtimeapi.CheckpointContainerRequest{ContainerId: kubeletCtrID, Location: "/var/lib/kubelet/checkpoints/web.tar", Timeout: 60},
		rs + "GetContainerEvents":        &runtimeapi.GetEventsRequest{},
		rs + "ListMetricDescriptors":     &runtimeapi.ListMetricDescriptorsRequest{},
		rs + "ListPodSandboxMetrics":     &runtimeapi.ListPodSandboxMetricsRequest{},
		rs + "RuntimeConfig":             &runtimeapi.RuntimeConfigRequest{},
		rs + "UpdatePodSandboxResources": &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: kubeletPodID, Resources: &runtimeapi.LinuxContainerResources{CpuShares: 1024}},
		rs + "StreamPodSandboxes":        &runtimeapi.StreamPodSandboxesRequest{Filter: podFilter},
		rs + "StreamContainers":          &runtimeapi.StreamContainersRequest{Filter: ctrFilter},
		rs + "StreamContainerStats":      &runtimeapi.StreamContainerStatsRequest{Filter: &runtimeapi.ContainerStatsFilter{Id: kubeletCtrID}},
		rs + "StreamPodSandboxStats":     &runtimeapi.StreamPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{Id: kubeletPodID}},
		rs + "StreamPodSandboxMetrics":   &runtimeapi.StreamPodSandboxMetricsRequest{},
		rs + "CheckpointPod":             &runtimeapi.CheckpointPodRequest{PodSandboxId: kubeletPodID, ContainerIds: []string{kubeletCtrID}, OutputPath: "/var/lib/kubelet/checkpoints/pod"},
		rs + "RestorePod":                &runtimeapi.RestorePodRequest{CheckpointPath: "/var/lib/kubelet/checkpoints/pod", Config: kubeletPodConfig(), ContainerConfigs: []*runtimeapi.ContainerConfig{kubeletContainerConfig()}},
		is + "ListImages":                &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: image}},
		is + "ImageStatus":               &runtimeapi.ImageStatusRequest{Image: image, Verbose: true},
		is + "PullImage":                 &runtimeapi.PullImageRequest{Image: image, Auth: &runtimeapi.AuthConfig{Username: "u", Password: "p", ServerAddress: "registry.example:5000"}, SandboxConfig: kubeletPodConfig()},
		is + "RemoveImage":               &runtimeapi.RemoveImageRequest{Image: image},
		is + "StreamImages":              &runtimeapi.StreamImagesRequest{Filter: &runtimeapi.ImageFilter{Image: image}},
		is + "ImageFsInfo":               &runtimeapi.ImageFsInfoRequest{},
	}
}
