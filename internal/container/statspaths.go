package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WritableLayer is the directory holding the container's writes (its
// overlay upper dir), whose usage the container's stats report.
func (m *Manager) WritableLayer(id string) string { return filepath.Join(m.dir(id), "upper") }

// CgroupsPath is the linux.cgroupsPath the container's bundle gave the
// runtime; an fs.ErrNotExist error when the bundle is gone (after a host
// reboot, or before create wrote it).
func (m *Manager) CgroupsPath(id string) (string, error) {
	data, err := os.ReadFile(filepath.Join(m.bundle(id), "config.json"))
	if err != nil {
		return "", err
	}
	var s struct {
		Linux *specs.Linux `json:"linux"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return "", fmt.Errorf("container %s: decode bundle config: %w", id, err)
	}
	if s.Linux == nil {
		return "", nil
	}
	return s.Linux.CgroupsPath, nil
}
