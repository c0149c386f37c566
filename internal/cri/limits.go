package cri

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The bounds on every string, list and map of every CRI request. They are
// checked by the interceptors (checkRequest) before any handler runs, so a
// request over a bound fails with InvalidArgument and has no side effect.
// The rules are keyed by the proto field, not by the RPC: a PodSandboxConfig
// is bounded the same in RunPodSandbox, CreateContainer and RestorePod, and
// a field a newer cri-api adds is bounded by the defaults until it has a
// rule of its own.
//
// Where Kubernetes or the kernel has a limit, the bound is that limit; the
// rest are far above anything kubelet sends and only stop a request from
// being a memory or log bomb. Domain packages still check meaning (a valid
// sysctl, an absolute mount path); these only check size and characters.
const (
	// MaxNameLen bounds names and IDs: pod name, namespace and uid,
	// container name, runtime handler, pod and container IDs. It is
	// Kubernetes' longest object name (a DNS-1123 subdomain), but the
	// character set is not DNS-1123's: critest uses upper case. A name
	// also may not hold '/', NUL or a control character: it ends up in
	// record keys, CNI_ARGS and log lines.
	MaxNameLen = 253
	// MaxLabelKeyLen bounds a label or annotation key: Kubernetes'
	// qualified name, a 253-byte DNS prefix, '/', a 63-byte name.
	MaxLabelKeyLen = 253 + 1 + 63
	// MaxLabelValueLen bounds a label value (and a label selector's).
	// Kubernetes allows 63 for its own labels; kubelet adds the pod's name
	// (up to MaxNameLen) to the labels it sends.
	MaxLabelValueLen = MaxNameLen
	// MaxMetadataBytes bounds the labels plus annotations of one object
	// (the sum of every key's and value's length): Kubernetes'
	// TotalAnnotationSizeLimitB.
	MaxMetadataBytes = 256 << 10
	// MaxImageRefLen bounds an image reference: a reference's name has at
	// most 255 bytes, its tag 128 and a digest 135; the rest is slack.
	MaxImageRefLen = 1024
	// MaxPathLen bounds a path: the kernel's PATH_MAX.
	MaxPathLen = 4096
	// MaxArgLen bounds one argument or one NAME=value environment entry:
	// the kernel's MAX_ARG_STRLEN less the NUL; exec refuses a longer one.
	MaxArgLen = 32*4096 - 1
	// MaxProcessBytes bounds a process's arguments plus environment,
	// counted as exec counts them (each string and its NUL). The kernel's
	// limit is a quarter of the stack limit, 2 MiB with the usual 8 MiB;
	// twice that leaves room for a raised stack limit.
	MaxProcessBytes = 4 << 20
	// MaxEnvs bounds the environment entries of a container: kubelet
	// writes seven per Service of the namespace when service links are on.
	MaxEnvs = 1 << 16
	// MaxMounts bounds the mounts, devices and CDI devices of a container.
	MaxMounts = 1024
	// MaxDNSItems bounds the servers, searches and options of a pod's DNS
	// config (kubelet's MaxDNSSearchPaths); each is a MaxNameLen name.
	MaxDNSItems = 32
	// MaxIDMappings bounds a user namespace's or idmapped mount's ranges:
	// the kernel takes at most 340 lines in uid_map.
	MaxIDMappings = 340
	// MaxGroups bounds supplemental groups: the kernel's NGROUPS_MAX.
	MaxGroups = 1 << 16
	// MaxStringLen bounds any other string (tokens, SELinux labels,
	// cpusets, cgroup values).
	MaxStringLen = 64 << 10
	// MaxItems bounds any other list or map.
	MaxItems = 4096
)

// strRule bounds one string: its length, and the characters it may hold.
type strRule struct {
	what string // what the string is, for the message
	max  int
	// bad, if set, says what is wrong with the string's content, or "".
	bad func(string) string
}

// fieldRule bounds one field. For a list it bounds each element (str) and
// the count; for a map the key (str), the value (val) and the count.
type fieldRule struct {
	str   strRule
	val   strRule
	items int
}

var (
	nameRule    = strRule{"name", MaxNameLen, badName}
	idRule      = strRule{"ID", MaxNameLen, badName}
	pathRule    = strRule{"path", MaxPathLen, badNUL}
	argRule     = strRule{"argument", MaxArgLen, badNUL}
	imageRule   = strRule{"image reference", MaxImageRefLen, badControl}
	labelKey    = strRule{"key", MaxLabelKeyLen, badKey}
	labelValue  = strRule{"label value", MaxLabelValueLen, badControl}
	annotValue  = strRule{"annotation value", MaxMetadataBytes, nil}
	dnsRule     = strRule{"DNS entry", MaxNameLen, badControl}
	cgroupKey   = strRule{"cgroup file name", MaxNameLen, badName}
	sysctlKey   = strRule{"sysctl name", MaxNameLen, badControl}
	shortString = strRule{"value", MaxPathLen, badNUL}
	shortName   = strRule{"value", MaxNameLen, badControl}
	anyString   = strRule{"string", MaxStringLen, nil}
)

// fieldRules are keyed by the field's full proto name; a field without a
// rule gets defaultRule.
var fieldRules = map[protoreflect.FullName]fieldRule{}

var defaultRule = fieldRule{str: anyString, val: anyString, items: MaxItems}

func init() {
	set := func(r fieldRule, fields ...string) {
		if r.items == 0 {
			r.items = MaxItems
		}
		if r.str.max == 0 {
			r.str = anyString
		}
		if r.val.max == 0 {
			r.val = anyString
		}
		for _, f := range fields {
			fieldRules[protoreflect.FullName("runtime.v1."+f)] = r
		}
	}
	set(fieldRule{str: nameRule},
		"PodSandboxMetadata.name", "PodSandboxMetadata.namespace", "PodSandboxMetadata.uid",
		"ContainerMetadata.name", "RunPodSandboxRequest.runtime_handler", "RestorePodRequest.runtime_handler",
		"ImageSpec.runtime_handler")
	set(fieldRule{str: idRule},
		"AttachRequest.container_id", "CheckpointContainerRequest.container_id", "CheckpointPodRequest.container_ids",
		"CheckpointPodRequest.pod_sandbox_id", "ContainerFilter.id", "ContainerFilter.pod_sandbox_id",
		"ContainerStatsFilter.id", "ContainerStatsFilter.pod_sandbox_id", "ContainerStatsRequest.container_id",
		"ContainerStatusRequest.container_id", "CreateContainerRequest.pod_sandbox_id", "ExecRequest.container_id",
		"ExecSyncRequest.container_id", "NamespaceOption.target_id", "PodSandboxFilter.id",
		"PodSandboxStatsFilter.id", "PodSandboxStatsRequest.pod_sandbox_id", "PodSandboxStatusRequest.pod_sandbox_id",
		"PortForwardRequest.pod_sandbox_id", "RemoveContainerRequest.container_id", "RemovePodSandboxRequest.pod_sandbox_id",
		"ReopenContainerLogRequest.container_id", "StartContainerRequest.container_id", "StopContainerRequest.container_id",
		"StopPodSandboxRequest.pod_sandbox_id", "UpdateContainerResourcesRequest.container_id",
		"UpdatePodSandboxResourcesRequest.pod_sandbox_id")
	set(fieldRule{str: pathRule},
		"PodSandboxConfig.log_directory", "ContainerConfig.log_path", "ContainerConfig.working_dir",
		"Mount.container_path", "Mount.host_path", "Mount.image_sub_path", "Device.container_path", "Device.host_path",
		"LinuxPodSandboxConfig.cgroup_parent", "LinuxContainerSecurityContext.seccomp_profile_path",
		"LinuxSandboxSecurityContext.seccomp_profile_path", "LinuxContainerSecurityContext.apparmor_profile",
		"SecurityProfile.localhost_ref", "CheckpointContainerRequest.location", "CheckpointPodRequest.output_path",
		"RestorePodRequest.checkpoint_path")
	set(fieldRule{str: pathRule, items: MaxMounts},
		"LinuxContainerSecurityContext.masked_paths", "LinuxContainerSecurityContext.readonly_paths")
	set(fieldRule{str: imageRule}, "ImageSpec.image", "ImageSpec.image_ref", "ImageSpec.user_specified_image")
	set(fieldRule{str: argRule, items: MaxEnvs},
		"ContainerConfig.command", "ContainerConfig.args", "ExecRequest.cmd", "ExecSyncRequest.cmd")
	set(fieldRule{items: MaxEnvs}, "ContainerConfig.envs")
	set(fieldRule{str: strRule{"environment name", MaxArgLen, badEnvName}}, "KeyValue.key")
	set(fieldRule{str: argRule}, "KeyValue.value")
	set(fieldRule{items: MaxMounts}, "ContainerConfig.mounts", "ContainerConfig.devices", "ContainerConfig.CDI_devices")
	set(fieldRule{str: shortString, items: 64}, "Mount.mount_options")
	set(fieldRule{items: MaxIDMappings}, "Mount.uidMappings", "Mount.gidMappings", "UserNamespace.uids", "UserNamespace.gids")
	set(fieldRule{items: MaxGroups},
		"LinuxContainerSecurityContext.supplemental_groups", "LinuxSandboxSecurityContext.supplemental_groups")
	set(fieldRule{str: dnsRule, items: MaxDNSItems}, "DNSConfig.servers", "DNSConfig.searches", "DNSConfig.options")
	set(fieldRule{str: strRule{"capability", 64, badControl}, items: 256},
		"Capability.add_capabilities", "Capability.drop_capabilities", "Capability.add_ambient_capabilities")
	set(fieldRule{str: strRule{"CDI device name", MaxPathLen, badControl}}, "CDIDevice.name")
	set(fieldRule{str: shortName}, "PodSandboxConfig.hostname", "PortMapping.host_ip", "Device.permissions",
		"HugepageLimit.page_size", "NetworkConfig.pod_cidr", "VersionRequest.version",
		"LinuxContainerSecurityContext.run_as_username")
	set(fieldRule{str: sysctlKey, val: shortString, items: 1024}, "LinuxPodSandboxConfig.sysctls")
	set(fieldRule{str: cgroupKey, val: shortString, items: 1024}, "LinuxContainerResources.unified")
	set(fieldRule{items: 64}, "LinuxContainerResources.hugepage_limits")
	// Labels and annotations are bounded together per object (see
	// checkMetadata), not by count.
	set(fieldRule{str: labelKey, val: labelValue, items: -1},
		"PodSandboxConfig.labels", "ContainerConfig.labels")
	set(fieldRule{str: labelKey, val: annotValue, items: -1},
		"PodSandboxConfig.annotations", "ContainerConfig.annotations", "ImageSpec.annotations",
		"UpdateContainerResourcesRequest.annotations")
	set(fieldRule{str: labelKey, val: labelValue},
		"PodSandboxFilter.label_selector", "ContainerFilter.label_selector",
		"ContainerStatsFilter.label_selector", "PodSandboxStatsFilter.label_selector")
}
