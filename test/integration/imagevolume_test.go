package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

func imageVolume(dst, imageRef, sub string) *runtimeapi.Mount {
	return &runtimeapi.Mount{ContainerPath: dst, Readonly: true, ImageSubPath: sub,
		Image: &runtimeapi.ImageSpec{Image: imageRef}}
}

// mountsUnder lists the host mount points below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

func TestImageVolumesThroughCRI(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustBusyboxImage(t, testkit.ImageConfig{}))
	data := testkit.MustImage(t, testkit.ImageConfig{},
		testkit.MustLayer(t, []testkit.Entry{
			testkit.Dir("models/"),
			testkit.File("models/model.txt", "weights v1\n"),
			testkit.Symlink("models/host", "../../../../.."),
		}, testkit.Gzip),
		testkit.MustLayer(t, []testkit.Entry{testkit.File("models/extra.txt", "extra\n")}, testkit.Gzip))
	reg.MustPush(t, "it/data:1", data)

	d, pod, podID, _ := podWithImage(t, "imgvol", reg.Ref("it/busybox:1"))
	ctx := context.Background()
	layersBefore := d.layerDirs()
	// Like kubelet: pull, then mount by the returned image_ref.
	dataRef, err := d.Images.PullImage(ctx, spec(reg.Ref("it/data:1")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	configDigest, _ := data.ConfigName()
	if dataRef != configDigest.String() {
		t.Fatalf("PullImage image_ref = %q, want the config digest %s", dataRef, configDigest)
	}

	cfg := containerConfig("reader", reg.Ref("it/busybox:1"), "sleep", "1000")
	cfg.Mounts = []*runtimeapi.Mount{imageVolume("/vol", dataRef, ""), imageVolume("/models", dataRef, "models")}
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	exec := func(cmd ...string) (string, error) {
		out, _, err := d.Runtime.ExecSync(ctx, id, cmd, 10*time.Second)
		return string(out), err
	}
	if out, err := exec("cat", "/vol/models/model.txt", "/models/extra.txt"); err != nil || out != "weights v1\nextra\n" {
		t.Errorf("reading the volumes: %q %v", out, err)
	}
	if out, err := exec("sh", "-c", "touch /vol/new || touch /models/new || echo > /models/model.txt"); err == nil {
		t.Errorf("wrote into an image volume: %q", out)
	}

	resp, err := d.Runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	reported := map[string]string{}
	for _, m := range resp.GetStatus().GetMounts() {
		reported[m.GetContainerPath()] = m.GetImage().GetImageRef()
	}
	if reported["/vol"] != dataRef || reported["/models"] != dataRef {
		t.Errorf("ContainerStatus mounts report images %v, want %s", reported, dataRef)
	}
	ctrState := filepath.Join(d.state, "containers", id)
	if got := mountsUnder(t, filepath.Join(ctrState, "imagevols")); len(got) != 2 {
		t.Errorf("host image volume mounts = %v, want 2", got)
	}

	// containerd's semantics, as for a container's own image: RemoveImage
	// succeeds and the volume keeps its layers until the container goes.
	if err := d.Images.RemoveImage(ctx, spec(dataRef)); err != nil {
		t.Fatalf("RemoveImage of an image a volume uses: %v", err)
	}
	if st, err := d.Images.ImageStatus(ctx, spec(dataRef), false); err != nil || st.GetImage() != nil {
		t.Errorf("ImageStatus after RemoveImage: %v %v", st.GetImage(), err)
	}
	if out, err := exec("cat", "/models/model.txt"); err != nil || out != "weights v1\n" {
		t.Errorf("volume after RemoveImage: %q %v", out, err)
	}
	if err := d.Runtime.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, ctrState); len(got) != 0 {
		t.Errorf("mounts left after RemoveContainer: %v", got)
	}
	if got := d.layerDirs(); !slices.Equal(got, layersBefore) {
		t.Errorf("layers after the volume's last user went: %v, want %v", got, layersBefore)
	}

	// Failures: each a clear code, and nothing left behind.
	dataRef, err = d.Images.PullImage(ctx, spec(reg.Ref("it/data:1")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		mount *runtimeapi.Mount
		code  codes.Code
	}{
		{"image-absent", imageVolume("/v", reg.Ref("it/absent:1"), ""), codes.NotFound},
		{"read-write", &runtimeapi.Mount{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: dataRef}}, codes.InvalidArgument},
		{"sub-path-missing", imageVolume("/v", dataRef, "models/nope"), codes.NotFound},
		{"sub-path-dotdot", imageVolume("/v", dataRef, "models/../.."), codes.InvalidArgument},
		{"sub-path-symlink-out", imageVolume("/v", dataRef, "models/host/etc"), codes.InvalidArgument},
	} {
		bad := containerConfig(c.name, reg.Ref("it/busybox:1"), "true")
		bad.Mounts = []*runtimeapi.Mount{imageVolume("/ok", dataRef, ""), c.mount}
		if _, err := d.Runtime.CreateContainer(ctx, podID, bad, pod); status.Code(err) != c.code {
			t.Errorf("%s: CreateContainer = %v, want %v", c.name, err, c.code)
		}
	}
	for _, dir := range []string{filepath.Join(d.root, "containers"), filepath.Join(d.state, "containers")} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("failed creates left %d entries in %s", len(ents), dir)
		}
	}
	if got := mountsUnder(t, filepath.Join(d.state, "containers")); len(got) != 0 {
		t.Errorf("failed creates left mounts: %v", got)
	}
}
