package container

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Inspection is what a verbose ContainerStatus shows beyond the CRI status,
// the fields operators' tools read from containerd's (`crictl inspect
// -o go-template --template '{{.info.pid}}'` to enter a container, the
// runtime spec to see what was really mounted).
type Inspection struct {
	// Pid is the container's init on the host; 0 unless it is running.
	Pid int
	// Bundle is the OCI bundle directory.
	Bundle string
	// Spec is the OCI runtime spec the container was created with (after
	// updates); nil if the bundle is gone.
	Spec *specs.Spec
}

// Inspect reads what Inspection needs from the runtime's record and the
// bundle: files, so it is for verbose requests, not for kubelet's polling.
func (m *Manager) Inspect(id string) (Inspection, error) {
	c, err := m.get(id)
	if err != nil {
		return Inspection{}, err
	}
	v := c.view()
	in := Inspection{Bundle: m.bundle(v.ID)}
	if v.State == Running {
		if rt, err := m.runtime(v.Handler); err == nil {
			if pid, err := rt.InitPid(v.ID); err == nil {
				in.Pid = pid
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(in.Bundle, "config.json"))
	if err == nil {
		var s specs.Spec
		if err := json.Unmarshal(data, &s); err != nil {
			return Inspection{}, fmt.Errorf("container %s: bundle spec: %w", id, err)
		}
		in.Spec = &s
	}
	return in, nil
}
