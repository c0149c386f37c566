// Package config is cradle's configuration: built-in defaults, the TOML file
// /etc/cradle/cradle.toml, drop-ins /etc/cradle/cradle.d/*.toml (lexical
// order, later keys win) and command-line overrides, in that order.
//
// The key names of root, state, socket, log_level, [registry] config_path,
// [cni] conf_dir/plugin_dirs, [stream] address/port, [runtime]
// default_handler/cgroup_driver and [runtime.handlers.NAME] path are a
// contract with tools outside the project: never rename them.
package config

import (
	"time"
)

// Default paths.
const (
	DefaultFile       = "/etc/cradle/cradle.toml"
	DefaultRoot       = "/var/lib/cradle"
	DefaultState      = "/run/cradle"
	DefaultSocket     = "/run/cradle/cradle.sock"
	DefaultCertsDir   = "/etc/cradle/certs.d"
	DefaultCNIConfDir = "/etc/cni/net.d"
)

// Config is the effective configuration.
type Config struct {
	// Root holds data that outlives the daemon (images, layers, records).
	Root string `toml:"root" comment:"data that outlives the daemon: images, layers, pod and container records"`
	// State holds runtime state that a reboot clears (sockets, mounts, runc state).
	State    string `toml:"state" comment:"runtime state cleared by a reboot (tmpfs): runc state, netns mounts"`
	Socket   string `toml:"socket" comment:"CRI gRPC unix socket"`
	LogLevel string `toml:"log_level" comment:"debug, info, warn or error"`
	// LogFormat is how the daemon writes its log to stderr.
	LogFormat string `toml:"log_format" comment:"text (logfmt) or json, one object per line"`

	Registry RegistryConfig `toml:"registry"`
	CNI      CNIConfig      `toml:"cni"`
	Stream   StreamConfig   `toml:"stream"`
	Runtime  RuntimeConfig  `toml:"runtime"`
	Metrics  Metrics        `toml:"metrics"`
	Tracing  Tracing        `toml:"tracing"`
	CDI      CDIConfig      `toml:"cdi"`
	NRI      NRIConfig      `toml:"nri"`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Address string `toml:"address" comment:"host:port serving Prometheus metrics at /metrics; empty = off (e.g. \"127.0.0.1:9090\")"`
	TLSCert string `toml:"tls_cert" comment:"PEM certificate: with tls_key, /metrics is served over HTTPS; empty = plain HTTP"`
	TLSKey  string `toml:"tls_key" comment:"PEM key for tls_cert"`
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	Endpoint string `toml:"endpoint" comment:"OTLP/gRPC collector: host:port (plaintext), http://host:port or https://host:port (TLS); empty = off"`
	// SamplingRatePerMillion samples new traces (those without a sampled
	// parent); a kubelet span that was sampled is always followed.
	SamplingRatePerMillion int `toml:"sampling_rate_per_million" comment:"traces started per million RPCs without a parent (0-1000000); an RPC whose caller sent a sampled span is always traced"`
}

// NRIConfig configures Node Resource Interface plugins.
type NRIConfig struct {
	Enable                    bool     `toml:"enable" comment:"serve NRI plugins (launched from plugin_path, or connecting to socket_path)"`
	SocketPath                string   `toml:"socket_path" comment:"where external plugins connect"`
	PluginPath                string   `toml:"plugin_path" comment:"plugins launched at start-up: executables named NN-name"`
	PluginConfigPath          string   `toml:"plugin_config_path" comment:"configuration of the launched plugins: NN-name.conf or name.conf"`
	PluginRegistrationTimeout Duration `toml:"plugin_registration_timeout" comment:"a plugin that has not registered this long after connecting is dropped"`
	PluginRequestTimeout      Duration `toml:"plugin_request_timeout" comment:"a plugin that has not answered a request this long is dropped; the pod or container goes on without it"`
	DisableConnections        bool     `toml:"disable_connections" comment:"accept no external plugin connections: only plugins launched from plugin_path run"`
}

// CDIConfig configures Container Device Interface devices.
type CDIConfig struct {
	SpecDirs []string `toml:"spec_dirs" comment:"CDI spec files (.json, .yaml) of device vendors, watched for changes; a later dir wins a conflict"`
}

// RegistryConfig configures image pulls.
type RegistryConfig struct {
	// ConfigPath is a containerd-style hosts.toml directory.
	ConfigPath string `toml:"config_path" comment:"hosts.toml directory: <config_path>/<host>/hosts.toml, <config_path>/_default/hosts.toml"`
	// MaxConcurrentDownloads bounds the layers of one pull fetched at once.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads" comment:"layers of one pull downloaded in parallel"`
	// StallTimeout cancels a pull that received no byte for this long; 0 disables.
	StallTimeout Duration `toml:"stall_timeout" comment:"cancel a pull that receives no byte for this long (0 = never); a slow but moving pull is never cancelled"`
}

// CNIConfig configures pod networking.
type CNIConfig struct {
	ConfDir    string   `toml:"conf_dir" comment:"the first .conf/.conflist/.json here (lexical order) is the pod network"`
	PluginDirs []string `toml:"plugin_dirs" comment:"directories searched for CNI plugin binaries"`
	// CallTimeout bounds one ADD or DEL of the plugin chain.
	CallTimeout Duration `toml:"call_timeout" comment:"bounds each ADD or DEL of the plugin chain: a hung plugin fails the call with DeadlineExceeded and is killed"`
}

// StreamConfig configures the exec/attach/port-forward server.
type StreamConfig struct {
	Address string `toml:"address" comment:"address the streaming server binds; keep it on loopback unless it has TLS"`
	Port    int    `toml:"port" comment:"0 = any free port"`
	TLSCert string `toml:"tls_cert" comment:"PEM certificate; empty = plain HTTP"`
	TLSKey  string `toml:"tls_key" comment:"PEM key for tls_cert"`
	// URLTTL is how long an exec/attach/port-forward URL stays valid.
	URLTTL Duration `toml:"url_ttl" comment:"how long a streaming URL stays valid (at most 1m)"`
}

// RuntimeConfig configures OCI runtimes (RuntimeClass handlers).
type RuntimeConfig struct {
	DefaultHandler string                   `toml:"default_handler" comment:"handler for pods without a RuntimeClass"`
	CgroupDriver   string                   `toml:"cgroup_driver" comment:"cgroupfs or systemd"`
	PodShmSize     int64                    `toml:"pod_shm_size" comment:"bytes of each pod's /dev/shm tmpfs"`
	Handlers       map[string]HandlerConfig `toml:"handlers"`
}

// HandlerConfig is one RuntimeClass handler: an OCI runtime binary.
type HandlerConfig struct {
	Path string `toml:"path" comment:"OCI runtime binary"`
	// Root is the runtime's state directory; empty = <state>/runtime/<name>.
	Root string `toml:"root,omitempty" comment:"runtime state dir; empty = <state>/runtime/<handler>"`
	// Type says which command line dialect the binary speaks.
	Type string `toml:"type,omitempty" comment:"oci (runc-compatible command line: runc, crun, runsc, kata)"`
	// CallTimeout bounds each command of the runtime binary; 0 = 4m.
	CallTimeout Duration `toml:"call_timeout,omitempty" comment:"bounds each runtime command (create, start, kill, delete, state, update): a hung runtime fails the call with DeadlineExceeded and is killed; 0 = 4m"`
	// RuntimeArgs go before the subcommand on every call of the binary
	// (for gVisor: --network=host, see docs/architecture.md).
	RuntimeArgs []string `toml:"runtime_args,omitempty" comment:"flags passed before the subcommand on every call of the runtime, e.g. [\"--network=host\"] for runsc"`
	// Sandboxed runtimes (gVisor, Kata) run a whole pod in one sandbox: each
	// pod gets a sandbox container that its containers join.
	Sandboxed bool `toml:"sandboxed,omitempty" comment:"the runtime runs a pod in one sandbox (gVisor, Kata): each pod gets a sandbox container (catatonit from the host) that its containers join"`
}

// Default returns the built-in configuration: the daemon runs with no file.
func Default() Config {
	return Config{
		Root:      DefaultRoot,
		State:     DefaultState,
		Socket:    DefaultSocket,
		LogLevel:  "info",
		LogFormat: "text",
		Registry: RegistryConfig{
			ConfigPath:             DefaultCertsDir,
			MaxConcurrentDownloads: 6,
			StallTimeout:           Duration(time.Minute),
		},
		CNI: CNIConfig{
			ConfDir:     DefaultCNIConfDir,
			PluginDirs:  []string{"/opt/cni/bin", "/usr/lib/cni"},
			CallTimeout: Duration(4 * time.Minute),
		},
		Stream: StreamConfig{
			Address: "127.0.0.1",
			Port:    0,
			URLTTL:  Duration(time.Minute),
		},
		Runtime: RuntimeConfig{
			DefaultHandler: "runc",
			CgroupDriver:   "cgroupfs",
			PodShmSize:     64 << 20,
			Handlers: map[string]HandlerConfig{
				"runc": {Path: "runc", Type: "oci"},
			},
		},
		CDI: CDIConfig{SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		NRI: NRIConfig{
			Enable:                    true,
			SocketPath:                "/var/run/nri/nri.sock",
			PluginPath:                "/opt/nri/plugins",
			PluginConfigPath:          "/etc/nri/conf.d",
			PluginRegistrationTimeout: Duration(5 * time.Second),
			PluginRequestTimeout:      Duration(2 * time.Second),
		},
	}
}
