package cri

import (
	"context"
	"path"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestKubeletRequestsCoverEveryRPCAndPass(t *testing.T) {
	reqs := kubeletRequests()
	fd := (&runtimeapi.VersionRequest{}).ProtoReflect().Descriptor().ParentFile()
	for i := range fd.Services().Len() {
		svc := fd.Services().Get(i)
		for j := range svc.Methods().Len() {
			m := svc.Methods().Get(j)
			full := "/" + string(svc.FullName()) + "/" + string(m.Name())
			req, ok := reqs[full]
			if !ok {
				t.Errorf("no kubelet request for %s", full)
				continue
			}
			if got := proto.MessageName(req.(proto.Message)); got != m.Input().FullName() {
				t.Errorf("%s: request is %s, want %s", full, got, m.Input().FullName())
			}
			if err := checkRequest(path.Base(full), req); err != nil {
				t.Errorf("kubelet's %s refused: %v", full, err)
			}
		}
	}
}

// Each case breaks one bound of an otherwise good request; the check must
// refuse it naming the field. The same request one step inside the bound
// passes, where that makes sense.
func TestLimits(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	pod := func(f func(*runtimeapi.PodSandboxConfig)) any {
		c := kubeletPodConfig()
		f(c)
		return &runtimeapi.RunPodSandboxRequest{Config: c}
	}
	ctr := func(f func(*runtimeapi.ContainerConfig)) any {
		c := kubeletContainerConfig()
		f(c)
		return &runtimeapi.CreateContainerRequest{PodSandboxId: kubeletPodID, Config: c, SandboxConfig: kubeletPodConfig()}
	}
	fill := func(m map[string]string, total int) { m["big"] = long(total - len("big")) }
	cases := []struct {
		name      string
		bad, good any
		field     string // in the message
	}{
		{"pod name length", pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = long(254) }),
			pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = long(253) }), "config.metadata.name"},
		{"pod name of 70000", pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = long(70000) }), nil, "config.metadata.name"},
		{"pod name with slash", pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "x/../../y" }),
			pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "X..Y" }), "'/'"},
		{"pod namespace with NUL", pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "a\x00b" }), nil, "config.metadata.namespace"},
		{"pod uid with control", pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "a\x1bb" }), nil, "config.metadata.uid"},
		{"pod labels and annotations", pod(func(c *runtimeapi.PodSandboxConfig) {
			fill(c.Annotations, MaxMetadataBytes-200)
			c.Labels["zz"] = long(200)
		}), pod(func(c *runtimeapi.PodSandboxConfig) { fill(c.Annotations, MaxMetadataBytes/2) }), "labels and annotations take"},
		{"label key", pod(func(c *runtimeapi.PodSandboxConfig) { c.Labels[long(MaxLabelKeyLen+1)] = "v" }),
			pod(func(c *runtimeapi.PodSandboxConfig) { c.Labels[long(MaxLabelKeyLen)] = "v" }), "config.labels key"},
		{"label value", pod(func(c *runtimeapi.PodSandboxConfig) { c.Labels["k"] = long(MaxLabelValueLen + 1) }),
			pod(func(c *runtimeapi.PodSandboxConfig) { c.Labels["k"] = long(MaxLabelValueLen) }), `config.labels["k"]`},
		{"empty annotation key", pod(func(c *runtimeapi.PodSandboxConfig) { c.Annotations[""] = "v" }), nil, "config.annotations key"},
		{"log directory", pod(func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "/" + long(MaxPathLen) }), nil, "config.log_directory"},
		{"cgroup parent NUL", pod(func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods\x00" }), nil, "config.linux.cgroup_parent"},
		{"dns searches", pod(func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = make([]string, MaxDNSItems+1) }), nil, "config.dns_config.searches"},
		{"sysctls", pod(func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls["net.x"] = long(MaxPathLen + 1) }), nil, "config.linux.sysctls"},
		{"port mappings", pod(func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = make([]*runtimeapi.PortMapping, MaxItems+1)
		}), nil, "config.port_mappings has 4097 items"},
		{"runtime handler", &runtimeapi.RunPodSandboxRequest{Config: kubeletPodConfig(), RuntimeHandler: "../runc"}, nil, "runtime_handler"},

		{"container name", ctr(func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = long(70000) }), nil, "config.metadata.name"},
		{"container labels and annotations", ctr(func(c *runtimeapi.ContainerConfig) { fill(c.Annotations, MaxMetadataBytes+1) }), nil, "config: labels and annotations"},
		{"sandbox config in create", &runtimeapi.CreateContainerRequest{PodSandboxId: kubeletPodID, Config: kubeletContainerConfig(),
			SandboxConfig: pod(func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "a/b" }).(*runtimeapi.RunPodSandboxRequest).Config}, nil, "sandbox_config.metadata.name"},
		{"image ref", ctr(func(c *runtimeapi.ContainerConfig) { c.Image.Image = long(MaxImageRefLen + 1) }), nil, "config.image.image"},
		{"argument length", ctr(func(c *runtimeapi.ContainerConfig) { c.Args = []string{long(MaxArgLen + 1)} }),
			ctr(func(c *runtimeapi.ContainerConfig) { c.Args = []string{long(MaxArgLen)} }), "config.args[0]"},
		{"argument NUL", ctr(func(c *runtimeapi.ContainerConfig) { c.Command = []string{"sh\x00"} }), nil, "config.command[0]"},
		{"process bytes", ctr(func(c *runtimeapi.ContainerConfig) {
			for range MaxProcessBytes / MaxArgLen {
				c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: "A", Value: []byte(long(MaxArgLen - 3))})
			}
		}), nil, "arguments and environment take"},
		{"env entry", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte(long(MaxArgLen - 1))}}
		}),
			ctr(func(c *runtimeapi.ContainerConfig) {
				c.Envs = []*runtimeapi.KeyValue{{Key: "A", Value: []byte(long(MaxArgLen - 2))}}
			}), "config: envs[0]"},
		{"env count", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Envs = make([]*runtimeapi.KeyValue, MaxEnvs+1)
			for i := range c.Envs {
				c.Envs[i] = &runtimeapi.KeyValue{Key: "A"}
			}
		}), nil, "config.envs has"},
		{"env name with =", ctr(func(c *runtimeapi.ContainerConfig) { c.Envs[0].Key = "A=B" }), nil, "config.envs[0].key"},
		{"mount count", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Mounts = make([]*runtimeapi.Mount, MaxMounts+1)
		}), nil, "config.mounts has"},
		{"mount path", ctr(func(c *runtimeapi.ContainerConfig) { c.Mounts[0].HostPath = "/" + long(MaxPathLen) }), nil, "config.mounts[0].host_path"},
		{"log path NUL", ctr(func(c *runtimeapi.ContainerConfig) { c.LogPath = "a\x00.log" }), nil, "config.log_path"},
		{"unified key", ctr(func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.Unified["../memory.max"] = "1" }), nil, "config.linux.resources.unified key"},
		{"masked paths", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.MaskedPaths = make([]string, MaxMounts+1)
		}), nil, "masked_paths"},

		{"env value NUL", ctr(func(c *runtimeapi.ContainerConfig) { c.Envs[0].Value = []byte("a\x00b") }), nil, "config.envs[0].value"},
		{"devices", ctr(func(c *runtimeapi.ContainerConfig) { c.Devices = make([]*runtimeapi.Device, MaxMounts+1) }), nil, "config.devices has"},
		{"CDI devices", ctr(func(c *runtimeapi.ContainerConfig) { c.CDIDevices = make([]*runtimeapi.CDIDevice, MaxMounts+1) }), nil, "config.CDI_devices has"},
		{"mount options", ctr(func(c *runtimeapi.ContainerConfig) { c.Mounts[0].MountOptions = make([]string, 65) }), nil, "mount_options has"},
		{"mount uid mappings", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Mounts[0].UidMappings = make([]*runtimeapi.IDMapping, MaxIDMappings+1)
		}), nil, "config.mounts[0].uidMappings has"},
		{"supplemental groups", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.SupplementalGroups = make([]int64, MaxGroups+1)
		}), nil, "supplemental_groups has"},
		{"capabilities", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities.AddCapabilities = []string{strings.Repeat("C", 65)}
		}), nil, "add_capabilities[0]"},
		{"hugepage limits", ctr(func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.HugepageLimits = make([]*runtimeapi.HugepageLimit, 65)
		}), nil, "hugepage_limits has"},
		{"target ID", ctr(func(c *runtimeapi.ContainerConfig) { c.Linux.SecurityContext.NamespaceOptions.TargetId = "../x" }), nil, "target_id"},
		{"image handler", ctr(func(c *runtimeapi.ContainerConfig) { c.Image.RuntimeHandler = "a/b" }), nil, "config.image.runtime_handler"},
		{"hostname control", pod(func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a\tb" }), nil, "config.hostname"},
		{"pod userns mappings", pod(func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{Uids: make([]*runtimeapi.IDMapping, MaxIDMappings+1)}
		}), nil, "userns_options.uids has"},
		{"restore handler", &runtimeapi.RestorePodRequest{RuntimeHandler: strings.Repeat("h", MaxNameLen+1)}, nil, "runtime_handler"},
		{"container ID", &runtimeapi.StartContainerRequest{ContainerId: long(MaxNameLen + 1)}, &runtimeapi.StartContainerRequest{ContainerId: long(MaxNameLen)}, "container_id"},
		{"pod ID with slash", &runtimeapi.StopPodSandboxRequest{PodSandboxId: "../x"}, nil, "pod_sandbox_id"},
		{"filter label selector", &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{long(MaxLabelKeyLen + 1): "v"}}}, nil, "filter.label_selector key"},
		{"exec cmd NUL", &runtimeapi.ExecSyncRequest{ContainerId: kubeletCtrID, Cmd: []string{"a\x00"}}, nil, "cmd[0]"},
		{"exec cmd bytes", &runtimeapi.ExecRequest{ContainerId: kubeletCtrID, Cmd: func() []string {
			c := make([]string, MaxProcessBytes/MaxArgLen+1)
			for i := range c {
				c[i] = long(MaxArgLen)
			}
			return c
		}()}, nil, "arguments and environment take"},
		{"pull ref", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: long(MaxImageRefLen + 1)}}, nil, "image.image"},
		{"pull auth", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x"}, Auth: &runtimeapi.AuthConfig{Password: long(MaxStringLen + 1)}},
			&runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "x"}, Auth: &runtimeapi.AuthConfig{Password: long(MaxStringLen)}}, "auth.password"},
		{"image annotations", &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "x", Annotations: map[string]string{"k": long(MaxMetadataBytes)}}}, nil, "image: labels and annotations"},
		{"checkpoint location", &runtimeapi.CheckpointContainerRequest{ContainerId: kubeletCtrID, Location: "/" + long(MaxPathLen)}, nil, "location"},
		{"checkpoint ids", &runtimeapi.CheckpointPodRequest{ContainerIds: make([]string, MaxItems+1)}, nil, "container_ids has"},
		{"restore container name", &runtimeapi.RestorePodRequest{ContainerConfigs: []*runtimeapi.ContainerConfig{ctr(func(c *runtimeapi.ContainerConfig) {
			c.Metadata.Name = "a/b"
		}).(*runtimeapi.CreateContainerRequest).Config}}, nil, "container_configs[0].metadata.name"},
		{"pod cidr", &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: long(MaxNameLen + 1)}}}, nil, "pod_cidr"},
		{"version", &runtimeapi.VersionRequest{Version: long(MaxNameLen + 1)}, nil, "version"},
		{"port forward ports", &runtimeapi.PortForwardRequest{PodSandboxId: kubeletPodID, Port: make([]int32, MaxItems+1)}, nil, "port has"},
		{"update annotations", &runtimeapi.UpdateContainerResourcesRequest{ContainerId: kubeletCtrID, Annotations: map[string]string{"": "x"}}, nil, "annotations key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkRequest("RPC", c.bad)
			if status.Code(errToStatus(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("got %v, want InvalidArgument naming %q", err, c.field)
			}
			if !strings.HasPrefix(err.Error(), "RPC: ") || len(err.Error()) > 600 {
				t.Errorf("message does not name the RPC or is not short: %.700s", err)
			}
			if c.good != nil {
				if err := checkRequest("RPC", c.good); err != nil {
					t.Fatalf("inside the bound, refused: %v", err)
				}
			}
		})
	}
}

func errToStatus(err error) error { return mapError("RPC", err) }

// The check runs before the handler: a refused request has no effect.
func TestLimitsCheckedBeforeHandler(t *testing.T) {
	ran := false
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	req := &runtimeapi.RunPodSandboxRequest{Config: kubeletPodConfig()}
	req.Config.Metadata.Name = strings.Repeat("n", 70000)
	_, err := UnaryInterceptor(quiet)(context.Background(), req, info, func(context.Context, any) (any, error) {
		ran = true
		return &runtimeapi.RunPodSandboxResponse{}, nil
	})
	if status.Code(err) != codes.InvalidArgument || ran {
		t.Fatalf("got %v, handler ran: %v", err, ran)
	}
}

type recvStream struct {
	grpc.ServerStream
	req proto.Message
}

func (s recvStream) Context() context.Context { return context.Background() }
func (s recvStream) RecvMsg(m any) error {
	proto.Merge(m.(proto.Message), s.req)
	return nil
}

// A streaming RPC's request is checked when its handler receives it.
func TestLimitsCheckedInStreams(t *testing.T) {
	ran := false
	info := &grpc.StreamServerInfo{FullMethod: "/runtime.v1.RuntimeService/StreamContainers", IsServerStream: true}
	bad := &runtimeapi.StreamContainersRequest{Filter: &runtimeapi.ContainerFilter{Id: "a/b"}}
	err := StreamInterceptor(quiet)(nil, recvStream{req: bad}, info, func(_ any, ss grpc.ServerStream) error {
		var req runtimeapi.StreamContainersRequest
		if err := ss.RecvMsg(&req); err != nil {
			return err
		}
		ran = true
		return nil
	})
	if status.Code(err) != codes.InvalidArgument || ran || !strings.Contains(err.Error(), "filter.id") {
		t.Fatalf("got %v, handler went on: %v", err, ran)
	}
}

// The pods found in the wild, sent as kubelet sends them to the server
// wired as the daemon's: refused, and nothing is left.
func TestWildPodNamesRefused(t *testing.T) {
	h := newFuzzHarness(t)
	c := runtimeapi.NewRuntimeServiceClient(h.conn)
	for _, name := range []string{"x/../../y", strings.Repeat("x", 70000)} {
		cfg := kubeletPodConfig()
		cfg.Metadata.Name = name
		_, err := c.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "config.metadata.name") {
			t.Errorf("pod %.20q: %v", name, err)
		}
		if err := h.leftovers(); err != nil {
			t.Error(err)
		}
	}
}
