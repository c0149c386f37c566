package integration

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// rootOnTmpfs puts a daemon's root on a tmpfs of size bytes, mounted before
// the daemon starts and unmounted after its teardown (cleanups run last
// registered first: this one after the daemon's, before the leak census).
func rootOnTmpfs(t *testing.T, d *daemon, size string) {
	t.Helper()
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", d.root, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs for the root (%v)", err)
	}
	t.Cleanup(func() {
		// A remount ro in the test is undone first, or the unmount of a
		// busy root fails.
		_ = unix.Mount("", d.root, "", unix.MS_REMOUNT, "")
		if err := unix.Unmount(d.root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount root tmpfs: %v", err)
		}
	})
}

// fill writes path until the filesystem is full and returns a function
// that frees the space again.
func fill(t *testing.T, path string) (free func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", path, err)
			}
			break
		}
	}
	// Small writes too: the last partial page.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	f.Close()
	freed := false
	free = func() {
		if !freed {
			freed = true
			if err := os.Remove(path); err != nil {
				t.Errorf("free %s: %v", path, err)
			}
		}
	}
	t.Cleanup(free)
	return free
}

// halfWritten lists files under root that a write interrupted by a full or
// read-only disk could leave: temporaries of atomic writes.
func halfWritten(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && (e.Name() == "diff" || e.Name() == "upper" || e.Name() == "work") {
			return fs.SkipDir // layer and container content, not records
		}
		if strings.HasSuffix(e.Name(), ".tmp") || strings.Contains(e.Name(), ".tmp") {
			out = append(out, strings.TrimPrefix(p, root))
		}
		return nil
	})
	if entries, _ := os.ReadDir(filepath.Join(root, "layers", "tmp")); len(entries) > 0 {
		for _, e := range entries {
			out = append(out, "/layers/tmp/"+e.Name())
		}
	}
	return out
}

// assertNoPanic stops d to read its log (the buffer is the daemon's while
// it runs), fails on a recovered panic in it, and starts d again.
func assertNoPanic(t *testing.T, d *daemon) {
	t.Helper()
	d.stop()
	if log := d.log.String(); strings.Contains(log, "panic") {
		t.Errorf("the daemon logged a panic:\n%s", log)
	}
	d.start()
}

// wantFaultCode fails unless err is a gRPC status with code.
func wantFaultCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Errorf("%s: err = %v, want %v", what, err, code)
	}
}

// checkReads asserts the read-only RPCs answer.
func checkReads(t *testing.T, d *daemon, podID, ctrID, imageRef string) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.Runtime.ListPodSandbox(ctx, nil); err != nil {
		t.Errorf("ListPodSandbox: %v", err)
	}
	if _, err := d.Runtime.ListContainers(ctx, nil); err != nil {
		t.Errorf("ListContainers: %v", err)
	}
	if _, err := d.Runtime.PodSandboxStatus(ctx, podID, false); err != nil {
		t.Errorf("PodSandboxStatus: %v", err)
	}
	if _, err := d.Runtime.ContainerStatus(ctx, ctrID, false); err != nil {
		t.Errorf("ContainerStatus: %v", err)
	}
	if _, err := d.Runtime.Status(ctx, false); err != nil {
		t.Errorf("Status: %v", err)
	}
	if _, err := d.Images.ListImages(ctx, nil); err != nil {
		t.Errorf("ListImages: %v", err)
	}
	if st, err := d.Images.ImageStatus(ctx, spec(imageRef), false); err != nil || st.GetImage() == nil {
		t.Errorf("ImageStatus: %v %v", st, err)
	}
	if _, err := d.Images.ImageFsInfo(ctx); err != nil {
		t.Errorf("ImageFsInfo: %v", err)
	}
}

// diskFaultDaemon starts a daemon whose root is a small tmpfs, with the
// test network, a busybox image pulled, a pod and a running container.
func diskFaultDaemon(t *testing.T, size string) (d *daemon, reg *testkit.Registry, imageRef, podID, ctrID string, pod *runtimeapi.PodSandboxConfig) {
	t.Helper()
	needRoot(t)
	reg = testkit.NewRegistry(t)
	reg.MustPush(t, "it/busybox:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}},
		testkit.Must(testkit.BusyboxLayer(testkit.Gzip))))
	imageRef = reg.Ref("it/busybox:1")
	d = newDaemonFiles(t, daemonOpts{})
	rootOnTmpfs(t, d, size)
	withTestNetwork(t, d)
	d.start()
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageRef), nil, nil); err != nil {
		t.Fatal(err)
	}
	pod = podConfig("disk", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	ctrID = runContainer(t, d, podID, pod, containerConfig("first", imageRef, "sleep", "3600"))
	return d, reg, imageRef, podID, ctrID, pod
}

// A full root disk: every write answers ResourceExhausted and leaves nothing
// half-written, reads keep working, and once space is freed everything works.
func TestFaultRootDiskFull(t *testing.T) {
	d, reg, imageRef, podID, ctrID, pod := diskFaultDaemon(t, "24m")
	ctx := context.Background()

	// A pull whose layers are larger than the space left.
	reg.MustPush(t, "it/big:1", testkit.MustImage(t, testkit.ImageConfig{},
		testkit.MustRandomLayer(t, 32<<20, 1, testkit.Gzip)))
	_, err := d.Images.PullImage(ctx, spec(reg.Ref("it/big:1")), nil, nil)
	wantFaultCode(t, "pull of an image larger than the disk", err, codes.ResourceExhausted)
	if st, _ := d.Images.ImageStatus(ctx, spec(reg.Ref("it/big:1")), false); st.GetImage() != nil {
		t.Error("the failed pull left an image")
	}
	if left := halfWritten(t, d.root); len(left) > 0 {
		t.Errorf("the failed pull left %v", left)
	}

	// A second image to remove while the disk is full.
	reg.MustPush(t, "it/other:1", testkit.MustImage(t, testkit.ImageConfig{},
		testkit.MustLayer(t, []testkit.Entry{testkit.File("other", "x")}, testkit.Gzip)))
	if _, err := d.Images.PullImage(ctx, spec(reg.Ref("it/other:1")), nil, nil); err != nil {
		t.Fatal(err)
	}

	free := fill(t, filepath.Join(d.root, "filler"))
	pods0, _ := d.Runtime.ListPodSandbox(ctx, nil)
	ctrs0, _ := d.Runtime.ListContainers(ctx, nil)

	_, err = d.Runtime.RunPodSandbox(ctx, podConfig("disk-full", runtimeapi.NamespaceMode_CONTAINER), "")
	wantFaultCode(t, "RunPodSandbox on a full disk", err, codes.ResourceExhausted)
	_, err = d.Runtime.CreateContainer(ctx, podID, containerConfig("second", imageRef, "sleep", "3600"), pod)
	wantFaultCode(t, "CreateContainer on a full disk", err, codes.ResourceExhausted)
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != len(pods0) {
		t.Errorf("pods %d after the failed Run, want %d", len(pods), len(pods0))
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != len(ctrs0) {
		t.Errorf("containers %d after the failed Create, want %d", len(ctrs), len(ctrs0))
	}
	// RemoveImage either succeeds or fails cleanly, keeping the image.
	err = d.Images.RemoveImage(ctx, spec(reg.Ref("it/other:1")))
	if err != nil {
		wantFaultCode(t, "RemoveImage on a full disk", err, codes.ResourceExhausted)
	}
	// A stop writes the record; it may fail, but cleanly.
	stopErr := d.Runtime.StopContainer(ctx, ctrID, 0)
	if stopErr != nil {
		wantFaultCode(t, "StopContainer on a full disk", stopErr, codes.ResourceExhausted)
	}
	checkReads(t, d, podID, ctrID, imageRef)
	if left := halfWritten(t, d.root); len(left) > 0 {
		t.Errorf("half-written files on the full disk: %v", left)
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "pods")); len(entries) != len(pods0) {
		t.Errorf("pod records after the failed Run: %d, want %d", len(entries), len(pods0))
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "containers")); len(entries) != len(ctrs0) {
		t.Errorf("container dirs after the failed Create: %d, want %d", len(entries), len(ctrs0))
	}

	// A restart on the full disk: the daemon starts and serves what it has.
	assertNoPanic(t, d)
	checkReads(t, d, podID, ctrID, imageRef)
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != len(pods0) {
		t.Errorf("pods %d after a restart on the full disk, want %d", len(pods), len(pods0))
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != len(ctrs0) {
		t.Errorf("containers %d after a restart on the full disk, want %d", len(ctrs), len(ctrs0))
	}

	free()
	if err := d.Images.RemoveImage(ctx, spec(reg.Ref("it/other:1"))); err != nil {
		t.Errorf("RemoveImage after space was freed: %v", err)
	}
	worksAgain(t, d, pod, podID, ctrID, imageRef, "after space was freed")
}

// worksAgain checks, once the disk is usable again, that the container
// ctrID stops and goes, that pod runs a new container and that a new pod
// runs one too, and that nothing was left half-written meanwhile.
func worksAgain(t *testing.T, d *daemon, pod *runtimeapi.PodSandboxConfig, podID, ctrID, imageRef, when string) {
	t.Helper()
	ctx := context.Background()
	if err := d.Runtime.StopContainer(ctx, ctrID, 0); err != nil {
		t.Errorf("StopContainer %s: %v", when, err)
	}
	if err := d.Runtime.RemoveContainer(ctx, ctrID); err != nil {
		t.Errorf("RemoveContainer %s: %v", when, err)
	}
	runContainer(t, d, podID, pod, containerConfig("second", imageRef, "sleep", "3600"))
	pod2 := podConfig("usable-again", runtimeapi.NamespaceMode_CONTAINER)
	pod2.LogDirectory = pod.LogDirectory
	pod2ID, err := d.Runtime.RunPodSandbox(ctx, pod2, "")
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", when, err)
	}
	runContainer(t, d, pod2ID, pod2, containerConfig("third", imageRef, "sleep", "3600"))
	if left := halfWritten(t, d.root); len(left) > 0 {
		t.Errorf("half-written files: %v", left)
	}
}

// readOnly bind-mounts each of dirs onto itself read-only and returns a
// function that makes them writable again (also run at cleanup).
//
// The whole root cannot be remounted read-only under a live daemon: it
// holds images.db open for writing, and the kernel refuses (EBUSY) to make
// a mount read-only while it has writers. A bind of a directory is a new
// mount without writers; images.db stays writable through the daemon's fd.
func readOnly(t *testing.T, dirs ...string) (writable func()) {
	t.Helper()
	var done []string
	writable = func() {
		for i := len(done) - 1; i >= 0; i-- {
			if err := unix.Unmount(done[i], unix.MNT_DETACH); err != nil {
				t.Errorf("unmount read-only bind %s: %v", done[i], err)
			}
		}
		done = nil
	}
	t.Cleanup(writable)
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind %s: %v", dir, err)
		}
		done = append(done, dir)
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			t.Fatalf("remount %s read-only: %v", dir, err)
		}
	}
	return writable
}

// A read-only root: writes fail cleanly (FailedPrecondition), reads keep
// answering, the daemon does not panic, and once the root is writable
// again everything works.
func TestFaultRootReadOnly(t *testing.T) {
	d, reg, imageRef, podID, ctrID, pod := diskFaultDaemon(t, "64m")
	ctx := context.Background()
	reg.MustPush(t, "it/other:1", testkit.MustImage(t, testkit.ImageConfig{},
		testkit.MustLayer(t, []testkit.Entry{testkit.File("other", "x")}, testkit.Gzip)))

	var dirs []string
	for _, sub := range []string{"pods", "containers", "layers", "cni-cache", "images"} {
		dirs = append(dirs, filepath.Join(d.root, sub))
	}
	writable := readOnly(t, dirs...)

	_, err := d.Runtime.RunPodSandbox(ctx, podConfig("read-only", runtimeapi.NamespaceMode_CONTAINER), "")
	wantFaultCode(t, "RunPodSandbox on a read-only root", err, codes.FailedPrecondition)
	_, err = d.Runtime.CreateContainer(ctx, podID, containerConfig("second", imageRef, "sleep", "3600"), pod)
	wantFaultCode(t, "CreateContainer on a read-only root", err, codes.FailedPrecondition)
	_, err = d.Images.PullImage(ctx, spec(reg.Ref("it/other:1")), nil, nil)
	wantFaultCode(t, "PullImage on a read-only root", err, codes.FailedPrecondition)
	checkReads(t, d, podID, ctrID, imageRef)
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != 1 {
		t.Errorf("pods after the failed Run: %d, want 1", len(pods))
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != 1 {
		t.Errorf("containers after the failed Create: %d, want 1", len(ctrs))
	}
	select {
	case <-d.done:
		t.Fatalf("the daemon exited: %v", d.exitErr)
	default:
	}

	writable()
	assertNoPanic(t, d)
	if _, err := d.Images.PullImage(ctx, spec(reg.Ref("it/other:1")), nil, nil); err != nil {
		t.Errorf("PullImage once writable: %v", err)
	}
	worksAgain(t, d, pod, podID, ctrID, imageRef, "once writable")
}

// On a full root, what frees space works: kubelet evicts pods under disk
// pressure by stopping and removing them, so Stop and Remove must not need
// to write first. A restart afterwards brings nothing back.
func TestFaultRootDiskFullTeardown(t *testing.T) {
	d, reg, imageRef, podID, ctrID, pod := diskFaultDaemon(t, "24m")
	ctx := context.Background()
	// An image kubelet's image GC removes to free space.
	reg.MustPush(t, "it/spare:1", testkit.MustImage(t, testkit.ImageConfig{},
		testkit.MustRandomLayer(t, 2<<20, 2, testkit.Gzip)))
	spare := reg.Ref("it/spare:1")
	if _, err := d.Images.PullImage(ctx, spec(spare), nil, nil); err != nil {
		t.Fatal(err)
	}
	layersWithSpare := len(d.layerDirs())
	other := runContainer(t, d, podID, pod, containerConfig("other", imageRef, "sleep", "3600"))
	pod2 := podConfig("second", runtimeapi.NamespaceMode_CONTAINER)
	pod2.LogDirectory = pod.LogDirectory
	pod2ID, err := d.Runtime.RunPodSandbox(ctx, pod2, "")
	if err != nil {
		t.Fatal(err)
	}
	runContainer(t, d, pod2ID, pod2, containerConfig("in-second", imageRef, "sleep", "3600"))
	free := fill(t, filepath.Join(d.root, "filler"))

	if err := d.Images.RemoveImage(ctx, spec(spare)); err != nil {
		t.Errorf("RemoveImage on a full disk: %v", err)
	}
	if st, _ := d.Images.ImageStatus(ctx, spec(spare), false); st.GetImage() != nil {
		t.Error("the removed image is still served")
	}
	if got := len(d.layerDirs()); got != layersWithSpare-1 {
		t.Errorf("layers %v after RemoveImage, want %d", d.layerDirs(), layersWithSpare-1)
	}
	if err := d.Runtime.StopContainer(ctx, ctrID, 0); err != nil {
		t.Errorf("StopContainer on a full disk: %v", err)
	}
	if err := d.Runtime.RemoveContainer(ctx, ctrID); err != nil {
		t.Errorf("RemoveContainer on a full disk: %v", err)
	}
	if _, err := d.Runtime.ContainerStatus(ctx, ctrID, false); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus of the removed container = %v, want NotFound", err)
	}
	// A pod stop stops its containers too.
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Errorf("StopPodSandbox on a full disk: %v", err)
	}
	if st := waitState(t, d, other, runtimeapi.ContainerState_CONTAINER_EXITED); st == nil {
		t.Error("the pod's container still runs")
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Errorf("RemovePodSandbox on a full disk: %v", err)
	}
	// Remove without a Stop first.
	if err := d.Runtime.RemovePodSandbox(ctx, pod2ID); err != nil {
		t.Errorf("RemovePodSandbox of a running pod on a full disk: %v", err)
	}
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("pods left: %v", pods)
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Errorf("containers left: %v", ctrs)
	}
	if left := halfWritten(t, d.root); len(left) > 0 {
		t.Errorf("half-written files: %v", left)
	}

	// Nothing comes back with a restart, on the full disk or after.
	d.stop()
	d.start()
	if pods, _ := d.Runtime.ListPodSandbox(ctx, nil); len(pods) != 0 {
		t.Errorf("pods after a restart: %v", pods)
	}
	if ctrs, _ := d.Runtime.ListContainers(ctx, nil); len(ctrs) != 0 {
		t.Errorf("containers after a restart: %v", ctrs)
	}
	if st, _ := d.Images.ImageStatus(ctx, spec(spare), false); st.GetImage() != nil {
		t.Error("the removed image is back after a restart")
	}
	free()
	if entries, _ := os.ReadDir(filepath.Join(d.root, "containers")); len(entries) != 0 {
		t.Errorf("container dirs left: %d", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join(d.root, "pods")); len(entries) != 0 {
		t.Errorf("pod records left: %d", len(entries))
	}
	runContainer(t, d, mustRun(t, d, pod), pod, containerConfig("again", imageRef, "sleep", "3600"))
}

func mustRun(t *testing.T, d *daemon, pod *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	id, err := d.Runtime.RunPodSandbox(context.Background(), pod, "")
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	return id
}
