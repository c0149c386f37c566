package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"go.yaml.in/yaml/v3"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// loadConfigFile decodes a crictl-format JSON or YAML file into a CRI type.
//
// crictl files use the proto field names (log_directory, port_mappings),
// numbers for enums and plain strings for KeyValue values: that is the
// encoding/json form of the cri-api types (their json tags and KeyValue's
// MarshalJSON), not protojson's, so encoding/json decodes them. Unknown
// fields are errors, so a misspelt key fails loudly instead of being dropped.
func loadConfigFile(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errdefs.NotFound("config file %s not found", path)
		}
		return fmt.Errorf("read config file: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errdefs.InvalidArgument("config file %s is empty", path)
	}
	// JSON keeps its own parser for its precise error offsets.
	if !looksLikeJSON(path, data) {
		if data, err = yamlToJSON(data); err != nil {
			return errdefs.InvalidArgument("config file %s: %v", path, err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return errdefs.InvalidArgument("config file %s: %v", path, err)
	}
	if dec.More() {
		return errdefs.InvalidArgument("config file %s: more than one JSON value", path)
	}
	return nil
}

func looksLikeJSON(path string, data []byte) bool {
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return true
	}
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}

// yamlToJSON converts the first YAML document to JSON.
func yamlToJSON(data []byte) ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	v, err := jsonCompatible(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonCompatible rewrites what YAML allows and JSON does not: mappings with
// non-string keys ({1: a} becomes {"1": a}).
func jsonCompatible(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			switch k.(type) {
			case string, int, int64, uint64, float64, bool:
				m[fmt.Sprint(k)] = c
			default:
				return nil, fmt.Errorf("unsupported mapping key %v", k)
			}
		}
		return m, nil
	case []any:
		for i, e := range t {
			c, err := jsonCompatible(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	}
	return v, nil
}

// loadPodSandboxConfig reads a crictl pod config. Like crictl it requires a
// name and namespace and makes up a UID when the file has none, so one file
// can be run again and again.
func loadPodSandboxConfig(path string) (*runtimeapi.PodSandboxConfig, error) {
	var cfg runtimeapi.PodSandboxConfig
	if err := loadConfigFile(path, &cfg); err != nil {
		return nil, err
	}
	md := cfg.GetMetadata()
	if md == nil {
		return nil, errdefs.InvalidArgument("pod config %s: metadata is not set", path)
	}
	if md.GetName() == "" || md.GetNamespace() == "" {
		return nil, errdefs.InvalidArgument("pod config %s: metadata needs a name and a namespace", path)
	}
	if md.GetUid() == "" {
		md.Uid = newUID()
	}
	return &cfg, nil
}

// newUID returns a random RFC 4122 version 4 UUID.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// loadContainerConfig reads a crictl container config. Like crictl it
// requires a name and an image: the runtime could say so too, but only
// after the image was pulled.
func loadContainerConfig(path string) (*runtimeapi.ContainerConfig, error) {
	var cfg runtimeapi.ContainerConfig
	if err := loadConfigFile(path, &cfg); err != nil {
		return nil, err
	}
	if cfg.GetMetadata().GetName() == "" {
		return nil, errdefs.InvalidArgument("container config %s: metadata.name is not set", path)
	}
	if strings.TrimSpace(cfg.GetImage().GetImage()) == "" {
		return nil, errdefs.InvalidArgument("container config %s: image.image is not set", path)
	}
	return &cfg, nil
}
