package config

import (
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// maxSocketPath is the longest unix socket path: sun_path has 108 bytes,
// one of them the terminating NUL. A longer one fails bind(2) with a bare
// EINVAL that names neither the path nor the limit.
const maxSocketPath = 107

// maxCallTimeout caps the call timeouts of runtime commands and CNI plugin
// calls: a CreateContainer gives its runtime create 4m and a RunPodSandbox
// all its steps 5m, so a longer bound would never be reached.
const maxCallTimeout = 4 * time.Minute

// validate checks every value and names the key and the file that set it.
func (l *Loaded) validate() error {
	c := &l.Config
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s: key %q: %s", l.where(key), key, fmt.Sprintf(format, args...)))
	}
	abs := func(key, v string) {
		if !filepath.IsAbs(v) {
			bad(key, "must be an absolute path, got %q", v)
		}
	}
	abs("root", c.Root)
	abs("state", c.State)
	abs("socket", c.Socket)
	if len(c.Socket) > maxSocketPath {
		bad("socket", "is %d bytes long; a unix socket path holds at most %d", len(c.Socket), maxSocketPath)
	}
	abs("registry.config_path", c.Registry.ConfigPath)
	abs("cni.conf_dir", c.CNI.ConfDir)
	for _, d := range c.CNI.PluginDirs {
		abs("cni.plugin_dirs", d)
	}
	if c.CNI.CallTimeout <= 0 || c.CNI.CallTimeout.Std() > maxCallTimeout {
		bad("cni.call_timeout", "must be positive and at most 4m (a RunPodSandbox's budget), got %s", c.CNI.CallTimeout.Std())
	}
	if len(c.CNI.PluginDirs) == 0 {
		bad("cni.plugin_dirs", "must name at least one directory")
	}
	if filepath.Clean(c.Root) == filepath.Clean(c.State) {
		bad("state", "must differ from root (%s)", c.Root)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.Registry.MaxConcurrentDownloads < 1 || c.Registry.MaxConcurrentDownloads > 64 {
		bad("registry.max_concurrent_downloads", "must be between 1 and 64, got %d", c.Registry.MaxConcurrentDownloads)
	}
	if c.Registry.StallTimeout < 0 {
		bad("registry.stall_timeout", "must not be negative")
	}
	if net.ParseIP(c.Stream.Address) == nil {
		bad("stream.address", "must be an IP address, got %q", c.Stream.Address)
	}
	if c.Stream.Port < 0 || c.Stream.Port > 65535 {
		bad("stream.port", "must be between 0 and 65535, got %d", c.Stream.Port)
	}
	if (c.Stream.TLSCert == "") != (c.Stream.TLSKey == "") {
		bad("stream.tls_cert", "tls_cert and tls_key must be set together")
	}
	// k8s.io/cri-streaming drops a URL's request after one minute
	// (stream.LibraryURLTTL; config cannot import stream).
	if ttl := c.Stream.URLTTL.Std(); ttl <= 0 || ttl > time.Minute {
		bad("stream.url_ttl", "must be positive and at most 1m (the streaming library forgets a URL after a minute), got %s", ttl)
	}
	c.validateTelemetry(bad)
	switch c.Runtime.CgroupDriver {
	case "cgroupfs", "systemd":
	default:
		bad("runtime.cgroup_driver", "must be cgroupfs or systemd, got %q", c.Runtime.CgroupDriver)
	}
	if c.Runtime.PodShmSize < 1<<20 {
		bad("runtime.pod_shm_size", "must be at least 1 MiB (1048576), got %d", c.Runtime.PodShmSize)
	}
	names := make([]string, 0, len(c.Runtime.Handlers))
	for name := range c.Runtime.Handlers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		h := c.Runtime.Handlers[name]
		key := "runtime.handlers." + name
		if h.Path == "" {
			bad(key+".path", "must name the runtime binary")
		}
		if h.Type == "" {
			h.Type = "oci"
		}
		if h.Type != "oci" {
			bad(key+".type", "must be \"oci\" (a runc-compatible command line), got %q", h.Type)
		}
		if h.Root != "" {
			abs(key+".root", h.Root)
		}
		if h.CallTimeout < 0 || h.CallTimeout.Std() > maxCallTimeout {
			bad(key+".call_timeout", "must be between 0 (the default, 4m) and 4m (a CreateContainer's budget), got %s", h.CallTimeout.Std())
		}
		for i, a := range h.RuntimeArgs {
			// Only flags: a bare word would be taken for the subcommand.
			if !strings.HasPrefix(a, "-") || strings.ContainsAny(a, "\x00\n") {
				bad(fmt.Sprintf("%s.runtime_args[%d]", key, i), "must be a flag (\"--name=value\"), got %q", a)
			}
		}
		c.Runtime.Handlers[name] = h
	}
	if _, ok := c.Runtime.Handlers[c.Runtime.DefaultHandler]; !ok {
		bad("runtime.default_handler", "no handler %q in [runtime.handlers] (have: %s)", c.Runtime.DefaultHandler, strings.Join(names, ", "))
	}
	for _, d := range c.CDI.SpecDirs {
		abs("cdi.spec_dirs", d)
	}
	abs("nri.socket_path", c.NRI.SocketPath)
	if len(c.NRI.SocketPath) > maxSocketPath {
		bad("nri.socket_path", "is %d bytes long; a unix socket path holds at most %d", len(c.NRI.SocketPath), maxSocketPath)
	}
	abs("nri.plugin_path", c.NRI.PluginPath)
	abs("nri.plugin_config_path", c.NRI.PluginConfigPath)
	if c.NRI.PluginRegistrationTimeout <= 0 {
		bad("nri.plugin_registration_timeout", "must be positive, got %s", c.NRI.PluginRegistrationTimeout.Std())
	}
	// A request to plugins happens inside a CRI call; a minute is already
	// far beyond what kubelet waits for most of them.
	if t := c.NRI.PluginRequestTimeout.Std(); t <= 0 || t > time.Minute {
		bad("nri.plugin_request_timeout", "must be positive and at most 1m, got %s", t)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}
