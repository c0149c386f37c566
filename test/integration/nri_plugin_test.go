package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

// testPlugin is an NRI plugin on the library's stub: it records every
// event as "Event id" and answers through the optional handlers.
type testPlugin struct {
	mu     sync.Mutex
	events []string
	synced []string // pod and container IDs of its Synchronize

	onRunPod func(context.Context, *api.PodSandbox) error
	onCreate func(*api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error)
	onUpdate func(*api.Container, *api.LinuxResources) ([]*api.ContainerUpdate, error)
}

func (p *testPlugin) record(event, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, event+" "+id)
}

// Events returns the events recorded for id, in order.
func (p *testPlugin) Events(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		if len(e) > len(id) && e[len(e)-len(id):] == id {
			out = append(out, e[:len(e)-len(id)-1])
		}
	}
	return out
}

func (p *testPlugin) Synced() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.synced)
}

func (p *testPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pod := range pods {
		p.synced = append(p.synced, pod.GetId())
	}
	for _, c := range ctrs {
		p.synced = append(p.synced, c.GetId())
	}
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod.GetId())
	if p.onRunPod != nil {
		return p.onRunPod(ctx, pod)
	}
	return nil
}

func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod.GetId())
	return nil
}

func (p *testPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod.GetId())
	return nil
}

func (p *testPlugin) CreateContainer(_ context.Context, pod *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", c.GetId())
	if p.onCreate != nil {
		return p.onCreate(pod, c)
	}
	return nil, nil, nil
}

func (p *testPlugin) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostCreateContainer", c.GetId())
	return nil
}

func (p *testPlugin) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("StartContainer", c.GetId())
	return nil
}

func (p *testPlugin) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostStartContainer", c.GetId())
	return nil
}

func (p *testPlugin) UpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container, r *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer", c.GetId())
	if p.onUpdate != nil {
		return p.onUpdate(c, r)
	}
	return nil, nil
}

func (p *testPlugin) PostUpdateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("PostUpdateContainer", c.GetId())
	return nil
}

func (p *testPlugin) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", c.GetId())
	return nil, nil
}

func (p *testPlugin) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	p.record("RemoveContainer", c.GetId())
	return nil
}

// connectPlugin connects p to the daemon's NRI socket as idx-name and
// waits until the daemon reports it synchronized.
func connectPlugin(t *testing.T, d *daemon, name, idx string, p *testPlugin) stub.Stub {
	t.Helper()
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx(idx), stub.WithSocketPath(d.nriSocket()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		s.Stop()
		<-done
	})
	eventually(t, 10*time.Second, "plugin "+name+" to be connected", func() bool {
		return slices.Contains(nriStatus(t, d).Plugins, idx+"-"+name)
	})
	return s
}

type nriStatusInfo struct {
	Enabled bool     `json:"enabled"`
	Socket  string   `json:"socket"`
	Plugins []string `json:"plugins"`
}

// nriStatus is what verbose Status says of NRI.
func nriStatus(t *testing.T, d *daemon) nriStatusInfo {
	t.Helper()
	resp, err := d.Runtime.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var st nriStatusInfo
	if err := json.Unmarshal([]byte(resp.GetInfo()["nri"]), &st); err != nil {
		t.Fatalf("Status info[nri] = %q: %v", resp.GetInfo()["nri"], err)
	}
	return st
}

func eventsEqual(got, want []string) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("events %v, want %v", got, want)
	}
	return nil
}
