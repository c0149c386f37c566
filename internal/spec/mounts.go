package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Container paths of the per-pod files.
const (
	etcHostname   = "/etc/hostname"
	etcHosts      = "/etc/hosts"
	etcResolvConf = "/etc/resolv.conf"
	devShm        = "/dev/shm"
)

// defaultMounts are the kernel filesystems every container gets. /run is
// left to the image, as kubelet's emptyDir conventions expect.
func defaultMounts(privileged bool) []specs.Mount {
	sysMode := "ro"
	if privileged {
		sysMode = "rw"
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: devShm, Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysMode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysMode}},
	}
}

// buildMounts returns every mount in the order to perform them (parents
// before children) and the rootfs propagation the CRI mounts need.
func buildMounts(in *Input, sc *runtimeapi.LinuxContainerSecurityContext, ns namespaces, sys System) ([]specs.Mount, string, error) {
	var extra []specs.Mount
	taken := map[string]bool{}
	propagation := ""
	for _, m := range in.Config.GetMounts() {
		om, prop, err := criOrImageMount(m, in, sys)
		if err != nil {
			return nil, "", err
		}
		if taken[om.Destination] {
			return nil, "", errdefs.InvalidArgument("two mounts target %s", om.Destination)
		}
		taken[om.Destination] = true
		extra = append(extra, om)
		// rshared needs the rootfs shared too; rslave needs at least slave.
		if prop == "rshared" || (prop == "rslave" && propagation == "") {
			propagation = prop
		}
	}

	fileMode := "rw"
	if sc.GetReadonlyRootfs() {
		fileMode = "ro"
	}
	for _, f := range []struct{ dst, src string }{
		{etcHostname, in.Files.Hostname},
		{etcHosts, in.Files.Hosts},
		{etcResolvConf, in.Files.ResolvConf},
	} {
		if f.src != "" && !taken[f.dst] {
			extra = append(extra, bind(f.src, f.dst, "rprivate", fileMode))
		}
	}
	shm := in.Files.ShmPath
	if ns.hostIPC {
		shm = devShm
	}
	if shm != "" && !taken[devShm] && !taken["/dev"] {
		extra = append(extra, bind(shm, devShm, "rprivate", "rw", "nosuid", "nodev", "noexec"))
	}
	for _, v := range ImageVolumes(in.VolumeDir, in.Image, in.Config) {
		extra = append(extra, bind(v.HostPath, v.ContainerPath, "rprivate", "rw"))
	}

	over := map[string]bool{}
	for _, m := range extra {
		over[m.Destination] = true
	}
	var all []specs.Mount
	for _, m := range defaultMounts(sc.GetPrivileged()) {
		if over[m.Destination] || over["/dev"] && strings.HasPrefix(m.Destination, "/dev/") {
			continue
		}
		all = append(all, m)
	}
	all = append(all, extra...)
	sort.SliceStable(all, func(i, j int) bool { return depth(all[i].Destination) < depth(all[j].Destination) })
	return all, propagation, nil
}

func bind(src, dst string, options ...string) specs.Mount {
	return specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append([]string{"rbind"}, options...)}
}

func depth(p string) int { return strings.Count(path.Clean(p), "/") }

// Per-mount flags a CRI mount may add (Mount.mount_options): only flags
// that restrict the bind mount, and the access-time ones that change nothing
// but bookkeeping. "exec", "dev" and "suid" are refused: on a bind mount they
// would lift a restriction the host's own mount of that path has (a nosuid
// /tmp would run set-uid binaries in the container). Flags that change what
// is mounted or how it propagates are the runtime's own.
var allowedMountOptions = map[string]bool{
	"noexec": true, "nodev": true, "nosuid": true,
	"noatime": true, "relatime": true, "strictatime": true, "nodiratime": true,
}

func criMount(m *runtimeapi.Mount, host HostFacts, rt RuntimeFeatures, sys System) (specs.Mount, string, error) {
	dst := m.GetContainerPath()
	if !path.IsAbs(dst) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mount container_path %q is not absolute", dst)
	}
	dst = path.Clean(dst)
	if dst == "/" {
		return specs.Mount{}, "", errdefs.InvalidArgument("a mount cannot replace the container's root")
	}
	if len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0 {
		return specs.Mount{}, "", errdefs.New(errdefs.ErrUnimplemented, "id-mapped mounts (at %s) are not supported in this cradle release", dst)
	}
	src := m.GetHostPath()
	if !filepath.IsAbs(src) {
		return specs.Mount{}, "", errdefs.InvalidArgument("mount host_path %q for %s is not absolute", src, dst)
	}

	// Everything that makes the request invalid whatever the host looks
	// like is checked before the host is asked anything, so the answer to
	// a bad request never depends on the node's mounts or kernel.
	var prop string
	switch p := m.GetPropagation(); p {
	case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		prop = "rprivate"
	case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		prop = "rslave"
	case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		prop = "rshared"
	default:
		return specs.Mount{}, "", errdefs.InvalidArgument("unknown mount propagation %d for %s", p, dst)
	}
	switch {
	case m.GetRecursiveReadOnly() && !m.GetReadonly():
		return specs.Mount{}, "", errdefs.InvalidArgument("recursive_read_only mount at %s must also be readonly", dst)
	case m.GetRecursiveReadOnly() && prop != "rprivate":
		return specs.Mount{}, "", errdefs.InvalidArgument("recursive_read_only mount at %s needs private propagation", dst)
	}
	for _, o := range m.GetMountOptions() {
		if !allowedMountOptions[o] {
			return specs.Mount{}, "", errdefs.InvalidArgument("mount option %q for %s is not allowed", o, dst)
		}
	}

	// CRI asks to follow a symlinked host path and mount its target.
	if _, err := sys.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return specs.Mount{}, "", errdefs.InvalidArgument("mount host_path %q for %s does not exist", src, dst)
		}
		return specs.Mount{}, "", errdefs.FailedPrecondition("mount host_path %q for %s: %v", src, dst, err)
	}
	real, err := sys.EvalSymlinks(src)
	if err != nil {
		return specs.Mount{}, "", errdefs.FailedPrecondition("mount host_path %q for %s: %v", src, dst, err)
	}
	switch prop {
	case "rslave":
		err = needPropagation(sys, real, "shared", "slave")
	case "rshared":
		err = needPropagation(sys, real, "shared")
	}
	if err != nil {
		return specs.Mount{}, "", err
	}

	mode := "rw"
	switch {
	case m.GetRecursiveReadOnly() && !host.RecursiveReadOnly:
		return specs.Mount{}, "", errdefs.FailedPrecondition("recursive read-only mounts need Linux 5.12 or later (mount at %s)", dst)
	case m.GetRecursiveReadOnly() && !rt.RecursiveReadOnly:
		return specs.Mount{}, "", errdefs.FailedPrecondition("the runtime handler's OCI runtime does not support recursive read-only mounts (no \"rro\" in `features`; mount at %s)", dst)
	case m.GetRecursiveReadOnly():
		mode = "rro"
	case m.GetReadonly():
		mode = "ro"
	}
	om := bind(real, dst, prop, mode)
	for _, o := range m.GetMountOptions() {
		if !slices.Contains(om.Options, o) {
			om.Options = append(om.Options, o)
		}
	}
	return om, prop, nil
}

// needPropagation fails unless the host mount holding src propagates as
// one of want: a slave or shared mount of a private source would silently
// propagate nothing.
func needPropagation(sys System, src string, want ...string) error {
	got, err := sys.Propagation(src)
	if err != nil {
		return errdefs.FailedPrecondition("mount propagation of %s: %v", src, err)
	}
	if !slices.Contains(want, got) {
		return errdefs.FailedPrecondition("host path %s is on a %s mount but the requested propagation needs a %s one (e.g. mount --make-rshared on its mount point)",
			src, got, strings.Join(want, " or "))
	}
	return nil
}

// Volume is an image VOLUME backed by a host directory.
type Volume struct {
	ContainerPath string
	HostPath      string
}

// ImageVolumes lists the image's VOLUMEs that no CRI mount covers, each
// with a host directory under volumeDir named after its container path, so
// a retried create finds the same one. The caller creates the directories
// (copying the image's content at that path into them) before starting the
// container. An empty volumeDir gives none.
func ImageVolumes(volumeDir string, img ocispec.ImageConfig, cfg *runtimeapi.ContainerConfig) []Volume {
	if volumeDir == "" {
		return nil
	}
	covered := map[string]bool{}
	for _, m := range cfg.GetMounts() {
		covered[path.Clean(m.GetContainerPath())] = true
	}
	var out []Volume
	for v := range img.Volumes {
		dst := path.Join("/", v)
		if covered[dst] || dst == "/" {
			continue
		}
		covered[dst] = true
		sum := sha256.Sum256([]byte(dst))
		out = append(out, Volume{ContainerPath: dst, HostPath: filepath.Join(volumeDir, hex.EncodeToString(sum[:8]))})
	}
	slices.SortFunc(out, func(a, b Volume) int { return strings.Compare(a.ContainerPath, b.ContainerPath) })
	return out
}
