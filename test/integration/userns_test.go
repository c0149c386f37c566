package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// usernsDaemon starts a daemon with the test network and an image of two
// layers: busybox, and /data/owned owned by 5:7 (mode 0600).
func usernsDaemon(t *testing.T) (d *daemon, image string) {
	t.Helper()
	needRoot(t)
	reg := testkit.NewRegistry(t)
	base := testkit.Must(testkit.BusyboxLayer(testkit.Gzip))
	owned := testkit.MustLayer(t, []testkit.Entry{
		testkit.Dir("data"),
		{Name: "data/owned", Content: []byte("secret"), Mode: 0o600, UID: 5, GID: 7},
	}, testkit.Gzip)
	if _, err := reg.Push("it/userns:1", testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, base, owned)); err != nil {
		t.Fatal(err)
	}
	d = newDaemonFiles(t, daemonOpts{})
	// MkdirTemp makes 0700; the pod's root (no one on the host) must be
	// able to pass through to the pod's files and rootfs, as under /run.
	if err := os.Chmod(d.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	withTestNetwork(t, d)
	d.start()
	image = reg.Ref("it/userns:1")
	if _, err := d.Images.PullImage(context.Background(), spec(image), nil, nil); err != nil {
		t.Fatal(err)
	}
	return d, image
}

func usernsOpts(mode runtimeapi.NamespaceMode, maps ...*runtimeapi.IDMapping) *runtimeapi.UserNamespace {
	return &runtimeapi.UserNamespace{Mode: mode, Uids: maps, Gids: maps}
}

var defaultIDMap = &runtimeapi.IDMapping{ContainerId: 0, HostId: 1000, Length: 100000}

// runToExit runs a container with the pod's namespace options (as kubelet
// sends them) and returns its log.
func runToExit(t *testing.T, d *daemon, podID string, pod *runtimeapi.PodSandboxConfig, name, image, script string, mounts ...*runtimeapi.Mount) (string, string) {
	t.Helper()
	ctx := context.Background()
	cfg := containerConfig(name, image, "sh", "-c", script)
	cfg.Mounts = mounts
	cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: pod.GetLinux().GetSecurityContext().GetNamespaceOptions(),
	}}
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_EXITED)
	b, _ := os.ReadFile(filepath.Join(pod.LogDirectory, name+".log"))
	if st.ExitCode != 0 {
		t.Fatalf("container %s exited %d: %s\nlog:\n%s", name, st.ExitCode, st.Message, b)
	}
	return id, string(b)
}

// hostMountsUnder lists mount points under dir in the host's mount table.
func hostMountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

func TestUsernsPodMode(t *testing.T) {
	d, image := usernsDaemon(t)
	ctx := context.Background()

	st, err := d.Runtime.Status(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.GetRuntimeHandlers() {
		if !h.GetFeatures().GetUserNamespaces() {
			t.Errorf("handler %q does not report user namespaces", h.GetName())
		}
	}
	if st.GetFeatures().GetUserNamespacesHostNetwork() {
		t.Error("user_namespaces_host_network reported, but a host-network pod cannot own its netns")
	}

	// Shared PID namespace, as kubelet's default: the catatonit init runs
	// in the user namespace too.
	pod := podConfig("userns", runtimeapi.NamespaceMode_POD)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	userns := usernsOpts(runtimeapi.NamespaceMode_POD, defaultIDMap)
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := d.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ps.GetStatus().GetLinux().GetNamespaces().GetOptions().GetUsernsOptions(); !proto.Equal(got, userns) {
		t.Errorf("PodSandboxStatus userns options = %v, want %v", got, userns)
	}

	// A volume owned by host root, with a file only root may read.
	vol := filepath.Join(d.dir, "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "private"), []byte("volume-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctrID, log := runToExit(t, d, podID, pod, "probe", image, `
cat /proc/self/uid_map /proc/self/gid_map
id
touch /newfile && echo touched
stat -c 'owner %u:%g %n' / /bin /data/owned /newfile
echo "$(cat /data/owned)"
cat /etc/hostname /etc/resolv.conf /etc/hosts >/dev/null && echo podfiles-readable
touch /dev/shm/x && echo shm-writable
hostname
echo "$(cat /vol/private)"
touch /vol/made && stat -c 'owner %u:%g %n' /vol /etc/hosts
ls /sys/class/net`, &runtimeapi.Mount{ContainerPath: "/vol", HostPath: vol})
	for _, re := range []string{
		`stdout F\s+0\s+1000\s+100000\n`,       // uid_map (and gid_map)
		`stdout F uid=0\(root\) gid=0\(root\)`, // root inside
		`stdout F touched\n`,                   // writable rootfs
		`stdout F owner 0:0 /\n`,               // upper dir is root's
		`stdout F owner 0:0 /bin\n`,            // lower layer is root's
		`stdout F owner 5:7 /data/owned\n`,     // second layer, other IDs kept
		`stdout F owner 0:0 /newfile\n`,        //
		`stdout F secret\n`,                    // root reads a 0600 file of uid 5
		`stdout F podfiles-readable\n`,         //
		`stdout F shm-writable\n`,              //
		`stdout F userns\n`,                    // hostname in the owned UTS ns
		`stdout F (?:eth0\n.*lo|lo\n.*eth0)\n`, // sysfs of the owned netns
	} {
		if !regexp.MustCompile(re).MatchString(log) {
			t.Errorf("log lacks %s:\n%s", re, log)
		}
	}
	// On disk, what the container's root wrote belongs to its host IDs (the
	// writable layer is owned by the pod's root); the image layers, read
	// through idmapped mounts, were not chowned.
	var fst unix.Stat_t
	if err := unix.Stat(filepath.Join(d.root, "containers", ctrID, "upper", "newfile"), &fst); err != nil || fst.Uid != 1000 || fst.Gid != 1000 {
		t.Errorf("upper/newfile on disk: %d:%d (%v), want 1000:1000", fst.Uid, fst.Gid, err)
	}
	for _, l := range d.layerDirs() {
		diff := filepath.Join(d.root, "layers", l, "diff")
		if err := unix.Stat(diff, &fst); err != nil || fst.Uid != 0 {
			t.Errorf("layer %s owner %d (%v), want 0", diff, fst.Uid, err)
		}
	}
	if err := unix.Stat(filepath.Join(d.root, "layers"), &fst); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Join(vol, "made"), &fst); err != nil || fst.Uid != 0 || fst.Gid != 0 {
		t.Errorf("vol/made on disk: %d:%d (%v), want 0:0 (written through the idmapped volume)", fst.Uid, fst.Gid, err)
	}
	// Only the pod's pins and the container's overlay are mounted: the
	// idmapped layer clones were detached once the overlay held them.
	for _, m := range hostMountsUnder(t, d.dir) {
		if strings.Contains(m, "/idmap") {
			t.Errorf("idmapped clone left mounted: %s", m)
		}
	}
	if !slices.Contains(hostMountsUnder(t, d.dir), filepath.Join(d.state, "pods", podID, "userns", "user")) {
		t.Errorf("user namespace pin not mounted: %v", hostMountsUnder(t, d.dir))
	}

	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	if m := hostMountsUnder(t, d.dir); len(m) != 0 {
		t.Errorf("mounts left after RemovePodSandbox: %v", m)
	}
	for _, p := range []string{filepath.Join(d.state, "pods", podID), filepath.Join(d.state, "containers", ctrID), filepath.Join(d.root, "containers", ctrID)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}

func TestUsernsNodeMode(t *testing.T) {
	d, image := usernsDaemon(t)
	ctx := context.Background()
	pod := podConfig("usernode", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOpts(runtimeapi.NamespaceMode_NODE)
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	_, log := runToExit(t, d, podID, pod, "probe", image, "cat /proc/self/uid_map")
	host, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Fields(strings.SplitN(log, "stdout F ", 2)[len(strings.SplitN(log, "stdout F ", 2))-1]), strings.Fields(string(host)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("container uid_map %q, host %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(d.state, "pods", podID, "userns")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a NODE-mode pod got a user namespace pin: %v", err)
	}
}

func TestUsernsBadRequests(t *testing.T) {
	d, _ := usernsDaemon(t)
	ctx := context.Background()
	for name, u := range map[string]*runtimeapi.UserNamespace{
		"two mappings": usernsOpts(runtimeapi.NamespaceMode_POD, defaultIDMap, &runtimeapi.IDMapping{ContainerId: 0, HostId: 2000, Length: 100000}),
		"0 unmapped":   usernsOpts(runtimeapi.NamespaceMode_POD, &runtimeapi.IDMapping{ContainerId: 1, HostId: 1000, Length: 100000}),
		"CONTAINER":    {Mode: runtimeapi.NamespaceMode_CONTAINER},
		"TARGET":       {Mode: runtimeapi.NamespaceMode_TARGET},
	} {
		pod := podConfig("bad", runtimeapi.NamespaceMode_CONTAINER)
		pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = u
		if _, err := d.Runtime.RunPodSandbox(ctx, pod, ""); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: RunPodSandbox = %v, want InvalidArgument", name, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.state, "pods")); len(ents) != 0 {
		t.Errorf("pod dirs left by refused requests: %d", len(ents))
	}
}

// A crash in the middle of RunPodSandbox leaves a pinned user namespace;
// the restarted daemon undoes the pod, pin included.
func TestUsernsCrashRecovery(t *testing.T) {
	d, _ := usernsDaemon(t)
	ctx := context.Background()
	pod := podConfig("crash", runtimeapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOpts(runtimeapi.NamespaceMode_POD, defaultIDMap)
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(d.state, "pods", podID, "userns", "user")
	if !slices.Contains(hostMountsUnder(t, d.dir), pin) {
		t.Fatalf("no user namespace pin at %s", pin)
	}
	d.kill()
	// Make the record say the Run never finished.
	recPath := filepath.Join(d.root, "pods", podID+".json")
	b, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec["state"] = "creating"
	if b, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d.start()
	// Recovery runs in the background once the daemon serves.
	eventually(t, 30*time.Second, "recovery to undo the pod", func() bool {
		_, err := os.Stat(filepath.Join(d.state, "pods", podID))
		return len(hostMountsUnder(t, d.dir)) == 0 && errors.Is(err, os.ErrNotExist)
	})
	if _, err := d.Runtime.PodSandboxStatus(ctx, podID, false); status.Code(err) != codes.NotFound {
		t.Errorf("undone pod still known: %v", err)
	}
}
