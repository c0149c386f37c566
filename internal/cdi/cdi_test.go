package cdi

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const vendorSpec = `cdiVersion: "0.6.0"
kind: cradle.test/dev
devices:
- name: null0
  containerEdits:
    env: ["CRADLE_CDI=null0"]
    deviceNodes:
    - path: /dev/cradle-null0
      hostPath: /dev/null
containerEdits:
  env: ["CRADLE_CDI_VENDOR=yes"]
  mounts:
  - hostPath: /tmp
    containerPath: /cradle-cdi
    options: [rbind, ro]
  hooks:
  - hookName: createContainer
    path: /bin/true
`

func newSpec() *specs.Spec {
	return &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{}}}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Written beside and renamed, as a vendor's tool should, so the watcher
	// never reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newRegistry(t *testing.T, dirs ...string) (*Registry, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	r := New(dirs, slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)))
	t.Cleanup(r.Close)
	return r, &logs
}

func TestInjectAppliesEdits(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "vendor.yaml"), vendorSpec)
	r, _ := newRegistry(t, dir)
	s := newSpec()
	if err := r.Inject(s, []string{"cradle.test/dev=null0"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"CRADLE_CDI=null0", "CRADLE_CDI_VENDOR=yes"} {
		if !slices.Contains(s.Process.Env, e) {
			t.Errorf("env %v lacks %s", s.Process.Env, e)
		}
	}
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/cradle-null0" || s.Linux.Devices[0].Major != 1 || s.Linux.Devices[0].Minor != 3 {
		t.Errorf("devices = %+v, want /dev/cradle-null0 as 1:3", s.Linux.Devices)
	}
	allowed := false
	for _, rule := range s.Linux.Resources.Devices {
		if rule.Allow && rule.Major != nil && *rule.Major == 1 && rule.Minor != nil && *rule.Minor == 3 {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("no cgroup rule allows 1:3: %+v", s.Linux.Resources.Devices)
	}
	if len(s.Mounts) != 1 || s.Mounts[0].Destination != "/cradle-cdi" || s.Mounts[0].Source != "/tmp" {
		t.Errorf("mounts = %+v", s.Mounts)
	}
	if s.Hooks == nil || len(s.Hooks.CreateContainer) != 1 || s.Hooks.CreateContainer[0].Path != "/bin/true" {
		t.Errorf("hooks = %+v", s.Hooks)
	}
}

func TestUnknownAndAmbiguousDevices(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), vendorSpec)
	writeFile(t, filepath.Join(dir, "b.yaml"), vendorSpec)
	r, _ := newRegistry(t, dir)

	err := r.Inject(newSpec(), []string{"cradle.test/dev=gone"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"cradle.test/dev=gone"`) {
		t.Fatalf("unknown device: %v", err)
	}
	err = r.Inject(newSpec(), []string{"cradle.test/dev=null0"})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "ambiguous") || !strings.Contains(err.Error(), `"cradle.test/dev=null0"`) {
		t.Fatalf("ambiguous device: %v", err)
	}
}

func TestBrokenFileIsLoggedOthersWork(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "good.yaml"), vendorSpec)
	broken := filepath.Join(dir, "broken.json")
	writeFile(t, broken, `{"cdiVersion": "0.6.0", "kind": `)
	r, logs := newRegistry(t, dir)
	if err := r.Inject(newSpec(), []string{"cradle.test/dev=null0"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), broken) {
		t.Fatalf("log does not name %s:\n%s", broken, logs)
	}
	// Once per error, not once per container.
	if n := strings.Count(logs.String(), "CDI spec file ignored"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs)
	}
}

func TestSpecChangesWithoutRestart(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "cdi") // absent at start: created later
	r, _ := newRegistry(t, dir)
	if err := r.Inject(newSpec(), []string{"cradle.test/dev=null0"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("before the file: %v", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "vendor.yaml"), vendorSpec)
	eventually(t, func() error { return r.Inject(newSpec(), []string{"cradle.test/dev=null0"}) })

	// A changed file: the device is renamed.
	writeFile(t, filepath.Join(dir, "vendor.yaml"), strings.Replace(vendorSpec, "name: null0", "name: null1", 1))
	eventually(t, func() error {
		if err := r.Inject(newSpec(), []string{"cradle.test/dev=null0"}); err == nil {
			return errors.New("the old name still resolves")
		}
		return r.Inject(newSpec(), []string{"cradle.test/dev=null1"})
	})
}

func TestDevices(t *testing.T) {
	got, err := Devices([]string{"v.com/c=b", "v.com/c=a", "v.com/c=b"}, map[string]string{
		"cdi.k8s.io/p_2": "v.com/c=z", "cdi.k8s.io/p_1": "v.com/c=a,v.com/c=y", "x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v.com/c=b", "v.com/c=a", "v.com/c=y", "v.com/c=z"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := Devices([]string{"gpu0"}, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unqualified name: %v", err)
	}
}

// eventually polls f until it succeeds or a deadline passes.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
