package container

import (
	"errors"
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestStopSignal(t *testing.T) {
	for _, tc := range []struct {
		cri   runtimeapi.Signal
		image string
		want  syscall.Signal
	}{
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "", syscall.SIGTERM},
		{runtimeapi.Signal_SIGNAL_SIGUSR1, "SIGQUIT", syscall.SIGUSR1}, // the config wins
		{runtimeapi.Signal_SIGNAL_SIGCLD, "", syscall.SIGCHLD},
		{runtimeapi.Signal_SIGNAL_SIGIOT, "", syscall.SIGABRT},
		{runtimeapi.Signal_SIGNAL_SIGRTMIN, "", 34},
		{runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3, "", 37},
		{runtimeapi.Signal_SIGNAL_SIGRTMAXMINUS2, "", 62},
		{runtimeapi.Signal_SIGNAL_SIGRTMAX, "", 64},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGQUIT", syscall.SIGQUIT},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "quit", syscall.SIGQUIT},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "9", syscall.SIGKILL},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGRTMIN+3", 37},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGBOGUS", syscall.SIGTERM},
	} {
		got, err := stopSignal(tc.cri, tc.image)
		if err != nil || got != tc.want {
			t.Errorf("stopSignal(%s, %q) = %v, %v; want %v", tc.cri, tc.image, got, err, tc.want)
		}
	}
	// Every CRI signal maps to a real one.
	for v, name := range runtimeapi.Signal_name {
		if v == 0 {
			continue
		}
		if _, err := stopSignal(runtimeapi.Signal(v), ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := stopSignal(runtimeapi.Signal(999), ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown CRI signal: %v", err)
	}
}

func TestContainerName(t *testing.T) {
	cfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2}}
	pod := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "ns", Uid: "u1"}}
	if got, want := containerName(cfg, pod), "k8s_app_web_ns_u1_2"; got != want {
		t.Errorf("name %q, want %q", got, want)
	}
}

func TestConfigHashTellsRetriesFromConflicts(t *testing.T) {
	a := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "a"}, Labels: map[string]string{"x": "1", "y": "2"}}
	b := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "a"}, Labels: map[string]string{"y": "2", "x": "1"}}
	ha, _, _ := configHash("pod", a)
	hb, _, _ := configHash("pod", b)
	hc, _, _ := configHash("other", a)
	b.Args = []string{"changed"}
	hd, _, _ := configHash("pod", b)
	if ha != hb || ha == hc || ha == hd {
		t.Errorf("hashes: same config %v, other pod %v, other config %v", ha == hb, ha == hc, ha == hd)
	}
}

func TestValidateConfig(t *testing.T) {
	ok := func() *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "a"},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			LogPath:  "a/0.log",
		}
	}
	if err := validateConfig(ok()); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mutate := range map[string]func(*runtimeapi.ContainerConfig){
		"no metadata":    func(c *runtimeapi.ContainerConfig) { c.Metadata = nil },
		"underscore":     func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "a_b" },
		"no image":       func(c *runtimeapi.ContainerConfig) { c.Image = nil },
		"absolute log":   func(c *runtimeapi.ContainerConfig) { c.LogPath = "/x.log" },
		"escaping log":   func(c *runtimeapi.ContainerConfig) { c.LogPath = "a/../../x.log" },
		"relative mount": func(c *runtimeapi.ContainerConfig) { c.Mounts = []*runtimeapi.Mount{{ContainerPath: "x"}} },
		"bad signal":     func(c *runtimeapi.ContainerConfig) { c.StopSignal = 999 },
	} {
		c := ok()
		mutate(c)
		if err := validateConfig(c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}
