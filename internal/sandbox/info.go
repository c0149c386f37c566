package sandbox

import (
	"encoding/json"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cradle-runtime/cradle/internal/cni"
)

// verbose is the shape of PodSandboxStatus's verbose "info" entry: what an
// operator debugging a pod wants that the CRI status has no field for.
type verbose struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Handler    string            `json:"runtimeHandler"`
	State      State             `json:"state"`
	CreatedAt  time.Time         `json:"createdAt"`
	Namespaces map[string]string `json:"namespaces"`
	Files      map[string]string `json:"files"`
	Network    *cni.Result       `json:"network,omitempty"`
	Config     json.RawMessage   `json:"config"`
}

// VerboseInfo returns the verbose status entries: "info" holds JSON.
func (s *Sandbox) VerboseInfo() (map[string]string, error) {
	cfg, err := protojson.Marshal(s.Config)
	if err != nil {
		return nil, err
	}
	ns := map[string]string{"network": "host", "ipc": "host", "uts": "host"}
	for k, p := range map[string]string{"network": s.NetNS, "ipc": s.IPCNS, "uts": s.UTSNS} {
		if p != "" {
			ns[k] = p
		}
	}
	b, err := json.Marshal(verbose{
		ID: s.ID, Name: s.Name, Handler: s.Handler, State: s.State, CreatedAt: s.CreatedAt,
		Namespaces: ns,
		Files:      map[string]string{"hostname": s.Hostname, "resolv.conf": s.ResolvConf, "hosts": s.Hosts, "shm": s.Shm},
		Network:    s.Network, Config: cfg,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{"info": string(b)}, nil
}
