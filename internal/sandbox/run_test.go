package sandbox

import (
	"context"
	"errors"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestRunValidation(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	opts := func(c *runtimeapi.PodSandboxConfig) *runtimeapi.NamespaceOption {
		return c.Linux.SecurityContext.NamespaceOptions
	}
	cases := []struct {
		name   string
		mutate func(c *runtimeapi.PodSandboxConfig)
		kind   error
	}{
		{"nil metadata", func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }, errdefs.ErrInvalidArgument},
		{"no name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }, errdefs.ErrInvalidArgument},
		{"no namespace", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "" }, errdefs.ErrInvalidArgument},
		{"no uid", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" }, errdefs.ErrInvalidArgument},
		{"semicolon in name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "a;b" }, errdefs.ErrInvalidArgument},
		{"unknown network mode", func(c *runtimeapi.PodSandboxConfig) { opts(c).Network = 42 }, errdefs.ErrInvalidArgument},
		{"container network mode", func(c *runtimeapi.PodSandboxConfig) { opts(c).Network = runtimeapi.NamespaceMode_CONTAINER }, errdefs.ErrInvalidArgument},
		{"target ipc mode", func(c *runtimeapi.PodSandboxConfig) { opts(c).Ipc = runtimeapi.NamespaceMode_TARGET }, errdefs.ErrInvalidArgument},
		{"unknown pid mode", func(c *runtimeapi.PodSandboxConfig) { opts(c).Pid = 7 }, errdefs.ErrInvalidArgument},
		{"target id", func(c *runtimeapi.PodSandboxConfig) { opts(c).TargetId = "abc" }, errdefs.ErrInvalidArgument},
		{"host network with userns", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).Network = runtimeapi.NamespaceMode_NODE
			opts(c).UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
		}, errdefs.ErrInvalidArgument},
		{"unknown userns mode", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}
		}, errdefs.ErrInvalidArgument},
		{"userns without mappings", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}
		}, errdefs.ErrInvalidArgument},
		{"userns mode container", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}
		}, errdefs.ErrInvalidArgument},
		{"shared pid", func(c *runtimeapi.PodSandboxConfig) { opts(c).Pid = runtimeapi.NamespaceMode_POD }, errdefs.ErrUnimplemented},
		{"long hostname", func(c *runtimeapi.PodSandboxConfig) { c.Hostname = string(make([]byte, 65)) }, errdefs.ErrInvalidArgument},
		{"dns server not an IP", func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Servers: []string{"dns.example"}}
		}, errdefs.ErrInvalidArgument},
		{"dns search with newline", func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig = &runtimeapi.DNSConfig{Searches: []string{"a\nnameserver 1.2.3.4"}}
		}, errdefs.ErrInvalidArgument},
		{"port 0", func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 80}}
		}, errdefs.ErrInvalidArgument},
		{"unknown protocol", func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: 9}}
		}, errdefs.ErrInvalidArgument},
		{"host sysctl", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.panic": "1"}
		}, errdefs.ErrInvalidArgument},
		{"net sysctl with host network", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).Network = runtimeapi.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, errdefs.ErrInvalidArgument},
		{"ipc sysctl with host ipc", func(c *runtimeapi.PodSandboxConfig) {
			opts(c).Ipc = runtimeapi.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"kernel.shmmax": "1"}
		}, errdefs.ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := podConfig("v")
			tc.mutate(c)
			_, err := m.Run(context.Background(), c, "")
			wantKind(t, err, tc.kind)
			e.assertNoTrace(t)
		})
	}
	_, err := m.Run(context.Background(), nil, "")
	wantKind(t, err, errdefs.ErrInvalidArgument)
	_, err = m.Get("")
	wantKind(t, err, errdefs.ErrInvalidArgument)
}

// Kubelet retries RunPodSandbox with the same config after its own
// timeout; the retry must get the first call's result, not a second pod.
func TestIdenticalRetry(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	ctx := context.Background()
	release, joined := make(chan struct{}), make(chan struct{})
	m.beforeStep = func(step string) error {
		if step == stepReady {
			<-release
		}
		return nil
	}
	m.onJoin = func() { close(joined) }

	first := make(chan string)
	go func() {
		id, err := m.Run(ctx, hostPod("slow"), "")
		if err != nil {
			t.Error(err)
		}
		first <- id
	}()
	eventually(t, "the first Run is under way", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.names) == 1
	})
	// The pod being created is invisible.
	if l := m.List(Filter{}); len(l) != 0 {
		t.Fatalf("list during run: %v", l)
	}
	// A different config under the same name is refused at once.
	changed := hostPod("slow")
	changed.Labels["v"] = "2"
	_, err := m.Run(ctx, changed, "")
	wantKind(t, err, errdefs.ErrAlreadyExists)
	_, err = m.Run(ctx, hostPod("slow"), "kata") // another handler is another config
	wantKind(t, err, errdefs.ErrAlreadyExists)

	second := make(chan string)
	go func() {
		id, err := m.Run(ctx, hostPod("slow"), "")
		if err != nil {
			t.Error(err)
		}
		second <- id
	}()
	<-joined
	close(release)
	id1, id2 := <-first, <-second
	if id1 == "" || id1 != id2 {
		t.Fatalf("first %q, retry %q", id1, id2)
	}
	// Finished: the retry still gets the same pod.
	m.onJoin = nil
	if id3, err := m.Run(ctx, hostPod("slow"), ""); err != nil || id3 != id1 {
		t.Fatalf("late retry: %q %v", id3, err)
	}
	if n := len(m.List(Filter{})); n != 1 {
		t.Fatalf("%d pods", n)
	}
	// A stopped pod is not handed out again.
	if err := m.Stop(ctx, id1); err != nil {
		t.Fatal(err)
	}
	_, err = m.Run(ctx, hostPod("slow"), "")
	wantKind(t, err, errdefs.ErrAlreadyExists)
}

// A retry waiting on a Run that fails gets that failure; afterwards the
// name is free again.
func TestRetryOfFailedRun(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	ctx := context.Background()
	injected := errors.New("injected")
	release, joined := make(chan struct{}), make(chan struct{})
	m.beforeStep = func(step string) error {
		if step == stepHosts {
			<-release
			return injected
		}
		return nil
	}
	m.onJoin = func() { close(joined) }
	errs := make(chan error, 2)
	go func() { _, err := m.Run(ctx, hostPod("doomed"), ""); errs <- err }()
	eventually(t, "the first Run is under way", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.names) == 1
	})
	go func() { _, err := m.Run(ctx, hostPod("doomed"), ""); errs <- err }()
	<-joined
	close(release)
	for range 2 {
		if err := <-errs; !errors.Is(err, injected) {
			t.Fatalf("got %v, want the injected failure", err)
		}
	}
	e.assertNoTrace(t)
	m.beforeStep, m.onJoin = nil, nil
	if _, err := m.Run(ctx, hostPod("doomed"), ""); err != nil {
		t.Fatalf("run after a failed run: %v", err)
	}
}

func TestListFilters(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	ctx := context.Background()
	var ids []string
	for _, n := range []string{"a", "b", "c"} {
		c := hostPod(n)
		c.Labels["tier"] = map[string]string{"a": "web", "b": "web", "c": "db"}[n]
		id, err := m.Run(ctx, c, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := m.Stop(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	got := func(f Filter) []string {
		var out []string
		for _, s := range m.List(f) {
			out = append(out, s.Metadata().GetName())
		}
		return out
	}
	check := func(f Filter, want ...string) {
		t.Helper()
		g := got(f)
		if len(g) != len(want) {
			t.Fatalf("List(%+v) = %v, want %v", f, g, want)
		}
		for i := range want {
			if g[i] != want[i] {
				t.Fatalf("List(%+v) = %v, want %v", f, g, want)
			}
		}
	}
	check(Filter{}, "a", "b", "c")
	check(Filter{ID: ids[2]}, "c")
	check(Filter{ID: ids[0][:10]}, "a")
	check(Filter{ID: "zz"})
	check(Filter{State: Ready}, "a", "c")
	check(Filter{State: NotReady}, "b")
	check(Filter{LabelSelector: map[string]string{"tier": "web"}}, "a", "b")
	check(Filter{LabelSelector: map[string]string{"tier": "web", "app": "b"}}, "b")
	check(Filter{LabelSelector: map[string]string{"tier": "web"}, State: Ready}, "a")
	check(Filter{LabelSelector: map[string]string{"nope": ""}})

	// Snapshots are copies: changing one changes nothing.
	s := m.List(Filter{ID: ids[0]})[0]
	s.Config.Labels["tier"] = "changed"
	if again, _ := m.Get(ids[0]); again.Labels()["tier"] != "web" {
		t.Fatal("a snapshot shares the pod's config")
	}
}

// Kubelet gives up on a slow RunPodSandbox and retries it; the first
// call's work goes on and the retry gets the finished pod.
func TestRunOutlivesCallerDeadline(t *testing.T) {
	e := newEnv(t, false)
	m := e.manager(t)
	release := make(chan struct{})
	m.beforeStep = func(step string) error {
		if step == stepReady {
			<-release
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error)
	go func() { _, err := m.Run(ctx, hostPod("slow"), ""); errs <- err }()
	eventually(t, "the Run is under way", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.names) == 1
	})
	cancel() // kubelet's timeout
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first call: %v", err)
	}
	close(release)
	id, err := m.Run(context.Background(), hostPod("slow"), "")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := m.Get(id); err != nil || s.State != Ready {
		t.Fatalf("%+v %v", s, err)
	}
	if n := len(m.List(Filter{})); n != 1 {
		t.Fatalf("%d pods", n)
	}
}
