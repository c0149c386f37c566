package spec

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/cdi"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// buildDevices returns the device nodes to create and the device cgroup
// rules: deny everything, then allow each requested device. The runtime
// adds its own standard allowances (null, zero, tty, ...). A privileged
// container gets every host device and no restriction.
func buildDevices(req []*runtimeapi.Device, privileged bool, sys System) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devices []specs.LinuxDevice
	rules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	seen := map[string]bool{}
	for _, d := range req {
		found, access, err := criDevice(d, sys)
		if err != nil {
			return nil, nil, err
		}
		for _, dev := range found {
			if seen[dev.Path] {
				return nil, nil, errdefs.InvalidArgument("two devices target %s", dev.Path)
			}
			seen[dev.Path] = true
			devices = append(devices, dev)
			major, minor := dev.Major, dev.Minor
			rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: &major, Minor: &minor, Access: access})
		}
	}
	if !privileged {
		return devices, rules, nil
	}
	host, err := sys.Devices("/dev")
	if err != nil {
		return nil, nil, errdefs.FailedPrecondition("list host devices: %v", err)
	}
	for _, dev := range host {
		if !seen[dev.Path] {
			devices = append(devices, dev)
		}
	}
	return devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}, nil
}

// criDevice resolves one CRI device. A host directory (e.g. /dev/dri)
// brings every device below it, at the same relative path under
// container_path.
func criDevice(d *runtimeapi.Device, sys System) ([]specs.LinuxDevice, string, error) {
	dst, src := d.GetContainerPath(), d.GetHostPath()
	if !path.IsAbs(dst) {
		return nil, "", errdefs.InvalidArgument("device container_path %q is not absolute", dst)
	}
	dst = path.Clean(dst)
	if !filepath.IsAbs(src) {
		return nil, "", errdefs.InvalidArgument("device host_path %q for %s is not absolute", src, dst)
	}
	access := d.GetPermissions()
	if access == "" {
		access = "rwm"
	}
	if strings.Trim(access, "rwm") != "" {
		return nil, "", errdefs.InvalidArgument("device %s permissions %q: want a combination of r, w and m", src, d.GetPermissions())
	}
	real, err := sys.EvalSymlinks(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", errdefs.InvalidArgument("device host_path %q does not exist", src)
	}
	if err != nil {
		return nil, "", errdefs.FailedPrecondition("device host_path %q: %v", src, err)
	}
	found, err := sys.Devices(real)
	switch {
	case errors.Is(err, ErrNotDevice):
		return nil, "", errdefs.InvalidArgument("device host_path %q is not a device node", src)
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", errdefs.InvalidArgument("device host_path %q does not exist", src)
	case err != nil:
		return nil, "", errdefs.FailedPrecondition("device host_path %q: %v", src, err)
	case len(found) == 0:
		return nil, "", errdefs.InvalidArgument("device host_path %q holds no device nodes", src)
	}
	out := make([]specs.LinuxDevice, 0, len(found))
	for _, dev := range found {
		rel, err := filepath.Rel(real, dev.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			return nil, "", errdefs.FailedPrecondition("device %s is outside %s", dev.Path, real)
		}
		dev.Path = path.Join(dst, filepath.ToSlash(rel))
		out = append(out, dev)
	}
	return out, access, nil
}

// CDIInjector applies the edits of CDI devices to a spec (internal/cdi).
type CDIInjector interface {
	Inject(s *specs.Spec, devices []string) error
}

// injectCDI resolves the container's CDI devices, from CDI_devices and the
// cdi.k8s.io/ annotations, last, so their edits see the finished spec.
func injectCDI(s *specs.Spec, cfg *runtimeapi.ContainerConfig, node *Node) error {
	var names []string
	for _, d := range cfg.GetCDIDevices() {
		names = append(names, d.GetName())
	}
	devices, err := cdi.Devices(names, cfg.GetAnnotations())
	if err != nil || len(devices) == 0 {
		return err
	}
	// Ignoring a requested GPU would start a container that cannot work.
	if node.CDI == nil {
		return errdefs.New(errdefs.ErrUnimplemented, "CDI devices (first: %q) are not configured on this node", devices[0])
	}
	return node.CDI.Inject(s, devices)
}
