package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/image"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/spec"
)

func (m *Manager) buildSpec(c *ctr, req *request, img image.Image) (*specs.Spec, error) {
	pod := req.pod
	if req.sb.CgroupParent != "" && req.sb.CgroupParent != pod.GetLinux().GetCgroupParent() {
		pod = proto.Clone(pod).(*runtimeapi.PodSandboxConfig)
		if pod.Linux == nil {
			pod.Linux = &runtimeapi.LinuxPodSandboxConfig{}
		}
		pod.Linux.CgroupParent = req.sb.CgroupParent
	}
	target, err := m.targetPIDNamespace(req.cfg)
	if err != nil {
		return nil, err
	}
	return spec.Build(spec.Input{
		TargetPIDNamespace: target,
		ID:                 c.rec.ID, SandboxID: req.sb.ID, Config: req.cfg, Sandbox: pod,
		ImageName: c.rec.ImageName, Image: img.Config.Config,
		RootfsPath: m.rootfs(c.rec.ID),
		Namespaces: req.sb.Namespaces, Files: req.sb.Files, ImageMounts: req.imageMounts,
		Handler: c.rec.Handler,
		Node:    m.cfg.Node,
	})
}

// targetPIDNamespace resolves namespace_options.pid = TARGET: the PID
// namespace of the running container named by target_id.
func (m *Manager) targetPIDNamespace(cfg *runtimeapi.ContainerConfig) (string, error) {
	opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if opts.GetPid() != runtimeapi.NamespaceMode_TARGET {
		return "", nil
	}
	c, err := m.get(opts.GetTargetId())
	if err != nil {
		return "", errdefs.NotFound("pid namespace target %q: no such container", opts.GetTargetId())
	}
	rt, err := m.runtime(c.rec.Handler)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := rt.State(ctx, c.rec.ID)
	if err != nil || st.Status != oci.StatusRunning || st.Pid <= 0 {
		return "", errdefs.FailedPrecondition("pid namespace target %s is not running", c.rec.ID)
	}
	return fmt.Sprintf("/proc/%d/ns/pid", st.Pid), nil
}

func writeBundle(dir string, s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode OCI spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("write OCI bundle: %w", err)
	}
	return nil
}

// logPath is where kubelet reads the container's log; "" when the pod or
// the container names none.
func logPath(pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	if pod.GetLogDirectory() == "" || cfg.GetLogPath() == "" {
		return ""
	}
	return filepath.Join(pod.GetLogDirectory(), cfg.GetLogPath())
}

// prepareLog creates the log file's directory and returns the path conmon
// writes to. Without a CRI log path the output goes to the bundle (a tmpfs),
// still readable for debugging and gone with the container.
func (m *Manager) prepareLog(c *ctr) (string, error) {
	p := c.rec.LogPath
	if p == "" {
		return filepath.Join(m.bundle(c.rec.ID), "ctr.log"), nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("create log directory: %w", err)
	}
	return p, nil
}

// imageName is the reference shown as the container's image: what the
// config asked for when that names the image, else its first tag.
func imageName(img image.Image, cfg *runtimeapi.ContainerConfig) string {
	ref := cfg.GetImage().GetImage()
	if _, err := digest.Parse(ref); err != nil && !isHexID(ref) {
		return ref
	}
	if len(img.RepoTags) > 0 {
		return img.RepoTags[0]
	}
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return ref
}

func isHexID(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

func userOf(p *specs.Process) User {
	u := User{UID: int64(p.User.UID), GID: int64(p.User.GID)}
	for _, g := range p.User.AdditionalGids {
		u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
	}
	return u
}
