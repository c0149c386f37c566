package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// cdiVendorSpec is a vendor's spec file: device `name` is a node with
// /dev/null's major and minor under a new path plus an env var; every device
// of the vendor brings a mount of share and a hook that marks share/hooked.
func cdiVendorSpec(name, share string) string {
	return fmt.Sprintf(`cdiVersion: "0.6.0"
kind: cradle.test/dev
devices:
- name: %s
  containerEdits:
    env: ["CRADLE_CDI=%s"]
    deviceNodes:
    - path: /dev/cradle-%s
      hostPath: /dev/null
- name: extra
  containerEdits:
    env: ["CRADLE_CDI_EXTRA=yes"]
containerEdits:
  mounts:
  - hostPath: %s
    containerPath: /cradle-cdi
    options: [rbind, ro]
  hooks:
  - hookName: createRuntime
    path: /bin/sh
    args: [sh, -c, "touch %s/hooked"]
`, name, name, name, share, share)
}

// writeAtomic writes a file the way a vendor's tool should: beside, then renamed.
func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

func TestCDIDevicesThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	img := reg.Ref("it/busybox:1")
	d, pod, podID, _ := podWithImage(t, "cdi", img)
	ctx := context.Background()

	// The spec dir appears while the daemon runs: it did not exist at start.
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "hello"), []byte("from the vendor\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d.cdiDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	specFile := filepath.Join(d.cdiDir(), "vendor.yaml")
	writeAtomic(t, specFile, cdiVendorSpec("null0", share))
	// A broken file beside it is logged and changes nothing for the others.
	broken := filepath.Join(d.cdiDir(), "broken.json")
	writeAtomic(t, broken, `{"cdiVersion": `)

	unknown := containerConfig("unknown", img, "sleep", "1000")
	unknown.CDIDevices = []*runtimeapi.CDIDevice{{Name: "cradle.test/dev=nope"}}
	_, err := d.Runtime.CreateContainer(ctx, podID, unknown, pod)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"cradle.test/dev=nope"`) {
		t.Fatalf("unknown CDI device: %v, want InvalidArgument naming it", err)
	}

	cfg := containerConfig("gpu", img, "sleep", "1000")
	cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "cradle.test/dev=null0"}}
	cfg.Annotations = map[string]string{"cdi.k8s.io/test_extra": "cradle.test/dev=extra"}
	var id string
	eventually(t, 10*time.Second, "the new spec file to be read", func() bool {
		id, err = d.Runtime.CreateContainer(ctx, podID, cfg, pod)
		return err == nil
	})
	if _, err := os.Stat(filepath.Join(share, "hooked")); err != nil {
		t.Errorf("the spec's createRuntime hook did not run: %v", err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	for _, c := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"stat", "-c", "%F %t:%T", "/dev/cradle-null0"}, "character special file 1:3\n"},
		// The device cgroup lets the container use the node.
		{[]string{"sh", "-c", "echo x > /dev/cradle-null0 && echo written"}, "written\n"},
		{[]string{"sh", "-c", "echo $CRADLE_CDI $CRADLE_CDI_EXTRA"}, "null0 yes\n"},
		{[]string{"cat", "/cradle-cdi/hello"}, "from the vendor\n"},
	} {
		if out, err := execOut(d, id, c.cmd...); err != nil || out != c.want {
			t.Errorf("%v = %q, %v; want %q", c.cmd, out, err, c.want)
		}
	}
	if !strings.Contains(d.log.String(), broken) {
		t.Errorf("the broken spec file %s is not logged", broken)
	}

	// The vendor renames the device while the daemon runs.
	writeAtomic(t, specFile, cdiVendorSpec("null1", share))
	renamed := containerConfig("gpu1", img, "sleep", "1000")
	renamed.CDIDevices = []*runtimeapi.CDIDevice{{Name: "cradle.test/dev=null1"}}
	eventually(t, 10*time.Second, "the changed spec file to be read", func() bool {
		_, err = d.Runtime.CreateContainer(ctx, podID, renamed, pod)
		return err == nil
	})
	old := containerConfig("gpu0", img, "sleep", "1000")
	old.CDIDevices = []*runtimeapi.CDIDevice{{Name: "cradle.test/dev=null0"}}
	if _, err := d.Runtime.CreateContainer(ctx, podID, old, pod); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a device the changed file no longer defines: %v", err)
	}
}
