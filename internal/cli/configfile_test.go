package cli

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A pod config in crictl's documented format: proto field names, enums as
// numbers.
const podJSON = `{
  "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1, "uid": "hdishd83djaidwnduwk28bcsb"},
  "hostname": "web",
  "log_directory": "/tmp",
  "labels": {"app": "web"},
  "port_mappings": [{"container_port": 80, "host_port": 8080}],
  "linux": {"security_context": {"namespace_options": {"network": 2}}}
}`

const podYAML = `metadata:
  name: nginx-sandbox
  namespace: default
  attempt: 1
  uid: hdishd83djaidwnduwk28bcsb
hostname: web
log_directory: /tmp
labels:
  app: web
port_mappings:
- container_port: 80
  host_port: 8080
linux:
  security_context:
    namespace_options:
      network: 2
`

func wantPod() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "nginx-sandbox", Namespace: "default", Attempt: 1, Uid: "hdishd83djaidwnduwk28bcsb"},
		Hostname:     "web",
		LogDirectory: "/tmp",
		Labels:       map[string]string{"app": "web"},
		PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
		}},
	}
}

func TestLoadPodSandboxConfigJSONAndYAML(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"pod.json", podJSON},
		{"pod.yaml", podYAML},
		{"pod-config", podJSON}, // no extension: sniffed as JSON
		{"pod.conf", podYAML},   // no extension: YAML
	} {
		got, err := loadPodSandboxConfig(writeFile(t, tc.name, tc.content))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !proto.Equal(got, wantPod()) {
			t.Errorf("%s: got %v\nwant %v", tc.name, got, wantPod())
		}
	}
}

func TestLoadPodSandboxConfigFillsUID(t *testing.T) {
	p := writeFile(t, "pod.yaml", "metadata: {name: a, namespace: b}\n")
	first, err := loadPodSandboxConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	second, err := loadPodSandboxConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !uuid.MatchString(first.Metadata.Uid) {
		t.Errorf("uid %q is not a v4 UUID", first.Metadata.Uid)
	}
	if first.Metadata.Uid == second.Metadata.Uid {
		t.Error("two loads got the same made-up UID")
	}
}

func TestLoadPodSandboxConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		kind                error
		msg                 string
	}{
		{"unknown field", "p.json", `{"metadata":{"name":"a","namespace":"b"},"log_dir":"/x"}`, errdefs.ErrInvalidArgument, `unknown field "log_dir"`},
		{"unknown yaml field", "p.yaml", "metadata: {name: a, namespace: b}\nlabelz: {}\n", errdefs.ErrInvalidArgument, `unknown field "labelz"`},
		{"no metadata", "p.json", `{"hostname":"x"}`, errdefs.ErrInvalidArgument, "metadata is not set"},
		{"no namespace", "p.yaml", "metadata:\n  name: a\n", errdefs.ErrInvalidArgument, "name and a namespace"},
		{"empty", "p.yaml", "  \n", errdefs.ErrInvalidArgument, "is empty"},
		{"bad json", "p.json", `{"metadata":`, errdefs.ErrInvalidArgument, "unexpected EOF"},
		{"bad yaml", "p.yaml", "metadata: [\n", errdefs.ErrInvalidArgument, "yaml"},
		{"wrong type", "p.yaml", "metadata: {name: a, namespace: b, attempt: many}\n", errdefs.ErrInvalidArgument, "attempt"},
		{"two values", "p.json", `{"metadata":{"name":"a","namespace":"b"}} {}`, errdefs.ErrInvalidArgument, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadPodSandboxConfig(writeFile(t, tc.file, tc.content))
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want %v containing %q", err, tc.kind, tc.msg)
			}
		})
	}
	_, err := loadPodSandboxConfig(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing file: got %v, want not found", err)
	}
}

// The next verbs load container configs with the same loader: KeyValue
// values are plain strings in crictl files, not protojson's base64.
func TestLoadConfigFileContainerConfig(t *testing.T) {
	p := writeFile(t, "ctr.yaml", `metadata: {name: busybox}
image: {image: busybox}
command: [top]
envs:
- {key: GREETING, value: hello world}
labels:
  1: numeric key
log_path: busybox/0.log
`)
	var cfg runtimeapi.ContainerConfig
	if err := loadConfigFile(p, &cfg); err != nil {
		t.Fatal(err)
	}
	want := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "busybox"},
		Image:    &runtimeapi.ImageSpec{Image: "busybox"},
		Command:  []string{"top"},
		Envs:     []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hello world")}},
		Labels:   map[string]string{"1": "numeric key"},
		LogPath:  "busybox/0.log",
	}
	if !proto.Equal(&cfg, want) {
		t.Errorf("got %v\nwant %v", &cfg, want)
	}
}
