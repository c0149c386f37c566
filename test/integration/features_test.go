package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// rroRuntimeEnv names a runc-compatible binary whose `features` lists
// "rro" (runc ≥ 1.1), for machines whose runc on PATH lacks it.
const rroRuntimeEnv = "CRADLE_TEST_RRO_RUNTIME"

// handlerScript writes a stand-in runtime that answers `features` with
// body and hands every other command to the real runc: Status must report
// what `features` says, nothing else.
func handlerScript(t *testing.T, dir, name, featuresBody string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = features ]; then\n%s\nfi\nexec runc \"$@\"\n", featuresBody)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runtimeHasRRO asks a runtime binary itself, to know what the default
// handler must report on this machine.
func runtimeHasRRO(t *testing.T, bin string) bool {
	out, err := exec.Command(bin, "features").Output()
	return err == nil && strings.Contains(string(out), `"rro"`)
}

func TestFeaturesReportedInStatus(t *testing.T) {
	needRoot(t)
	scripts := t.TempDir()
	withRRO := handlerScript(t, scripts, "with-rro", `echo '{"ociVersionMin":"1.0.0","mountOptions":["bind","rbind","ro","rro"]}'; exit 0`)
	noFeatures := handlerScript(t, scripts, "no-features", `echo "No help topic for 'features'" >&2; exit 3`)
	d := startDaemon(t, daemonOpts{extraConfig: fmt.Sprintf(`[runtime.handlers.with-rro]
path = %q
[runtime.handlers.no-features]
path = %q
`, withRRO, noFeatures)})

	resp, err := d.Runtime.Status(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	f := resp.GetFeatures()
	if !f.GetSupplementalGroupsPolicy() || !f.GetMountOptions() {
		t.Errorf("runtime features = %v, want supplemental_groups_policy and mount_options", f)
	}
	kernelRRO := kernelAtLeast(t, 5, 12)
	want := map[string]bool{
		"":            kernelRRO && runtimeHasRRO(t, "runc"),
		"runc":        kernelRRO && runtimeHasRRO(t, "runc"),
		"with-rro":    kernelRRO,
		"no-features": false,
	}
	got := map[string]bool{}
	for _, h := range resp.GetRuntimeHandlers() {
		got[h.GetName()] = h.GetFeatures().GetRecursiveReadOnlyMounts()
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || g != w {
			t.Errorf("handler %q: recursive_read_only_mounts = %v (listed %v), want %v", name, g, ok, w)
		}
	}
	d.stop() // the log buffer is the daemon's until it exits
	if !strings.Contains(d.log.String(), `msg="runtime features unknown; the handler is reported without optional features" handler=no-features`) {
		t.Errorf("the handler without `features` was not logged:\n%s", d.log.String())
	}
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

// featureImage is busybox with a user that belongs to a group only the
// image's /etc/group knows (the KEP-3619 test image's shape) and a
// STOPSIGNAL of its own.
func featureImage(t *testing.T) (*testkit.Registry, string) {
	reg := testkit.NewRegistry(t)
	accounts := testkit.MustLayer(t, []testkit.Entry{
		testkit.Dir("etc/"),
		testkit.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser1:x:1000:1000::/home/app:/bin/sh\n"),
		testkit.File("etc/group", "root:x:0:\nuser1:x:1000:\ngroup-in-image:x:50000:user1\n"),
	}, testkit.Gzip)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}, StopSignal: "SIGQUIT"},
		testkit.Must(testkit.BusyboxLayer(testkit.Gzip)), accounts)
	if _, err := reg.Push("it/features:1", img); err != nil {
		t.Fatal(err)
	}
	return reg, reg.Ref("it/features:1")
}

// featurePod runs a pod on handler with the feature image pulled. The pod
// is in the host's network namespace: nothing here needs CNI, and the
// shared test bridge is then no concern.
func featurePod(t *testing.T, extraConfig, handler string) (d *daemon, pod *runtimeapi.PodSandboxConfig, podID, imageName string) {
	t.Helper()
	_, imageName = featureImage(t)
	d = startDaemon(t, daemonOpts{extraConfig: extraConfig})
	ctx := context.Background()
	if _, err := d.Images.PullImage(ctx, spec(imageName), nil, nil); err != nil {
		t.Fatal(err)
	}
	pod = podConfig("features", runtimeapi.NamespaceMode_CONTAINER)
	pod.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	return d, pod, podID, imageName
}

// runContainer creates and starts cfg and waits until it runs.
func runContainer(t *testing.T, d *daemon, podID string, pod *runtimeapi.PodSandboxConfig, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	ctx := context.Background()
	id, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
	if err != nil {
		t.Fatalf("create %s: %v", cfg.GetMetadata().GetName(), err)
	}
	if err := d.Runtime.StartContainer(ctx, id); err != nil {
		t.Fatalf("start %s: %v", cfg.GetMetadata().GetName(), err)
	}
	waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
	return id
}

// execOut runs cmd in a container; a non-zero exit is an error.
func execOut(d *daemon, id string, cmd ...string) (string, error) {
	stdout, stderr, err := d.Runtime.ExecSync(context.Background(), id, cmd, 10*time.Second)
	return string(stdout) + string(stderr), err
}

// tmpfsUnder makes dir/sub a tmpfs, so a bind of dir has a sub-mount.
func tmpfsUnder(t *testing.T, dir string) {
	t.Helper()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
}

// An RRO mount on a handler that cannot make one fails clearly, and the
// proto's rules hold whatever the handler.
func TestRecursiveReadOnlyRefusedWhereUnsupported(t *testing.T) {
	needRoot(t)
	noRRO := handlerScript(t, t.TempDir(), "no-rro", `echo '{"ociVersionMin":"1.0.0","mountOptions":["bind","rbind","ro"]}'; exit 0`)
	d, pod, podID, imageName := featurePod(t, fmt.Sprintf("[runtime.handlers.no-rro]\npath = %q\n", noRRO), "no-rro")
	host := t.TempDir()
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		mount *runtimeapi.Mount
		code  codes.Code
	}{
		{"unsupported", &runtimeapi.Mount{HostPath: host, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true}, codes.FailedPrecondition},
		{"not-readonly", &runtimeapi.Mount{HostPath: host, ContainerPath: "/mnt", RecursiveReadOnly: true}, codes.InvalidArgument},
	} {
		cfg := containerConfig(c.name, imageName, "sleep", "60")
		cfg.Mounts = []*runtimeapi.Mount{c.mount}
		_, err := d.Runtime.CreateContainer(ctx, podID, cfg, pod)
		if status.Code(err) != c.code {
			t.Errorf("%s: CreateContainer err = %v, want %v", c.name, err, c.code)
		}
	}
}

func TestRecursiveReadOnlyMount(t *testing.T) {
	needRoot(t)
	if !kernelAtLeast(t, 5, 12) {
		t.Skip("recursive read-only mounts need Linux 5.12")
	}
	rro := os.Getenv(rroRuntimeEnv)
	if rro == "" {
		if !runtimeHasRRO(t, "runc") {
			t.Skipf("runc on PATH lacks rro: set %s to a runtime that has it", rroRuntimeEnv)
		}
		rro = "runc"
	}
	if !runtimeHasRRO(t, rro) {
		t.Fatalf("%s=%s does not list rro in its features", rroRuntimeEnv, rro)
	}
	d, pod, podID, imageName := featurePod(t, fmt.Sprintf("[runtime.handlers.rro]\npath = %q\n", rro), "rro")
	resp, err := d.Runtime.Status(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(resp.GetRuntimeHandlers(), func(h *runtimeapi.RuntimeHandler) bool { return h.GetName() == "rro" }); i < 0 ||
		!resp.GetRuntimeHandlers()[i].GetFeatures().GetRecursiveReadOnlyMounts() {
		t.Fatalf("handler rro not reported with recursive_read_only_mounts: %v", resp.GetRuntimeHandlers())
	}

	host := t.TempDir()
	tmpfsUnder(t, host)
	// A runtime from $CRADLE_TEST_RRO_RUNTIME may be built without
	// seccomp; that is not under test.
	unconfined := &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
	}}
	cfg := containerConfig("rro", imageName, "sleep", "3600")
	cfg.Linux = unconfined
	cfg.Mounts = []*runtimeapi.Mount{
		{HostPath: host, ContainerPath: "/rro", Readonly: true, RecursiveReadOnly: true},
		{HostPath: host, ContainerPath: "/ro", Readonly: true},
	}
	id := runContainer(t, d, podID, pod, cfg)

	out, err := execOut(d, id, "touch", "/rro/sub/file")
	if err == nil || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write into the sub-mount of an rro mount: err %v, output %q; want Read-only file system", err, out)
	}
	if out, err := execOut(d, id, "touch", "/rro/file"); err == nil {
		t.Errorf("write into the rro mount itself succeeded: %q", out)
	}
	// A plain read-only bind leaves the sub-mount writable: the test
	// above really tells rro from ro.
	if out, err := execOut(d, id, "touch", "/ro/sub/file"); err != nil {
		t.Errorf("write into the sub-mount of a plain ro mount: %v %q", err, out)
	}

	// The proto's rules are checked before the runtime sees anything.
	for name, m := range map[string]*runtimeapi.Mount{
		"rro-rw":   {HostPath: host, ContainerPath: "/mnt", RecursiveReadOnly: true},
		"rro-bidi": {HostPath: host, ContainerPath: "/mnt", Readonly: true, RecursiveReadOnly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
	} {
		c := containerConfig(name, imageName, "sleep", "60")
		c.Linux = unconfined
		c.Mounts = []*runtimeapi.Mount{m}
		if _, err := d.Runtime.CreateContainer(context.Background(), podID, c, pod); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
}

func TestMountOptions(t *testing.T) {
	needRoot(t)
	d, pod, podID, imageName := featurePod(t, "", "")
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := containerConfig("opts", imageName, "sleep", "3600")
	cfg.Mounts = []*runtimeapi.Mount{
		{HostPath: host, ContainerPath: "/noexec", MountOptions: []string{"noexec", "nosuid", "nodev"}},
		{HostPath: host, ContainerPath: "/plain"},
	}
	id := runContainer(t, d, podID, pod, cfg)

	if out, err := execOut(d, id, "/plain/run.sh"); err != nil || out != "ran\n" {
		t.Fatalf("script on a plain mount: %v %q", err, out)
	}
	if out, err := execOut(d, id, "sh", "-c", "/noexec/run.sh"); err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("script on a noexec mount: err %v, output %q; want Permission denied", err, out)
	}
	// The kernel's own view of the mount carries the flags.
	mi, err := execOut(d, id, "grep", " /noexec ", "/proc/self/mountinfo")
	if err != nil || contains(mi, "noexec", "nosuid", "nodev") != nil {
		t.Errorf("mountinfo of /noexec: %v %q", err, mi)
	}

	for _, opt := range []string{"suid", "exec", "remount", "mode=0777"} {
		c := containerConfig("bad-"+strings.ReplaceAll(opt, "=", ""), imageName, "sleep", "60")
		c.Mounts = []*runtimeapi.Mount{{HostPath: host, ContainerPath: "/mnt", MountOptions: []string{opt}}}
		_, err := d.Runtime.CreateContainer(context.Background(), podID, c, pod)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), opt) {
			t.Errorf("mount option %q: err = %v, want InvalidArgument naming it", opt, err)
		}
	}
}

func TestSupplementalGroupsPolicy(t *testing.T) {
	needRoot(t)
	d, pod, podID, imageName := featurePod(t, "", "")
	for _, c := range []struct {
		policy runtimeapi.SupplementalGroupsPolicy
		want   []int64
	}{
		{runtimeapi.SupplementalGroupsPolicy_Merge, []int64{1000, 1234, 50000}},
		{runtimeapi.SupplementalGroupsPolicy_Strict, []int64{1000, 1234}},
	} {
		t.Run(c.policy.String(), func(t *testing.T) {
			name := "groups-" + strings.ToLower(c.policy.String())
			cfg := containerConfig(name, imageName, "sh", "-c", "id -G; exec sleep 3600")
			cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				RunAsUser:                &runtimeapi.Int64Value{Value: 1000},
				SupplementalGroups:       []int64{1234},
				SupplementalGroupsPolicy: c.policy,
			}}
			id := runContainer(t, d, podID, pod, cfg)
			wantLine := strings.Trim(fmt.Sprint(c.want), "[]")

			logFile := filepath.Join(pod.LogDirectory, name+".log")
			eventually(t, 20*time.Second, "id -G in "+logFile, func() bool {
				b, _ := os.ReadFile(logFile)
				return strings.Contains(string(b), " stdout F ")
			})
			if b, _ := os.ReadFile(logFile); !strings.HasSuffix(strings.TrimSpace(string(b)), " stdout F "+wantLine) {
				t.Errorf("first process: log %q, want groups %q", b, wantLine)
			}
			if out, err := execOut(d, id, "id", "-G"); err != nil || out != wantLine+"\n" {
				t.Errorf("exec'd process: id -G = %q, %v; want %q", out, err, wantLine)
			}
			st, err := d.Runtime.ContainerStatus(context.Background(), id, false)
			if err != nil {
				t.Fatal(err)
			}
			u := st.GetStatus().GetUser().GetLinux()
			got := slices.Sorted(slices.Values(u.GetSupplementalGroups()))
			if u.GetUid() != 1000 || u.GetGid() != 1000 || !slices.Equal(got, c.want) {
				t.Errorf("ContainerStatus.user = %v, want uid 1000 gid 1000 groups %v", u, c.want)
			}
		})
	}
	cfg := containerConfig("groups-unknown", imageName, "sleep", "60")
	cfg.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		SupplementalGroupsPolicy: runtimeapi.SupplementalGroupsPolicy(7),
	}}
	if _, err := d.Runtime.CreateContainer(context.Background(), podID, cfg, pod); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown policy: err = %v, want InvalidArgument", err)
	}
}

func TestStopSignalHonouredAndReported(t *testing.T) {
	needRoot(t)
	d, pod, podID, imageName := featurePod(t, "", "")
	ctx := context.Background()
	trap := `trap 'echo got USR1; exit 0' USR1; echo ready; while :; do sleep 0.1; done`
	cfg := containerConfig("usr1", imageName, "sh", "-c", trap)
	cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1
	id := runContainer(t, d, podID, pod, cfg)
	st, err := d.Runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetStatus().GetStopSignal(); got != runtimeapi.Signal_SIGNAL_SIGUSR1 {
		t.Errorf("stop_signal = %v, want SIGUSR1", got)
	}
	logFile := filepath.Join(pod.LogDirectory, "usr1.log")
	eventually(t, 20*time.Second, "the trap to be set", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Contains(string(b), "stdout F ready")
	})
	// A long grace period: only the trap can make the container exit 0
	// soon; SIGTERM would kill the shell (143), SIGKILL would be 137.
	if err := d.Runtime.StopContainer(ctx, id, 60); err != nil {
		t.Fatal(err)
	}
	exited := waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_EXITED)
	if exited.ExitCode != 0 || exited.FinishedAt-exited.StartedAt > int64(50*time.Second) {
		t.Errorf("exit code %d after %v, want 0 well before the grace period", exited.ExitCode, time.Duration(exited.FinishedAt-exited.StartedAt))
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "stdout F got USR1") {
		t.Errorf("log %q does not show the trapped SIGUSR1", b)
	}

	// Without a stop_signal the image's STOPSIGNAL is what would be sent.
	def := runContainer(t, d, podID, pod, containerConfig("default", imageName, "sleep", "3600"))
	st, err = d.Runtime.ContainerStatus(ctx, def, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetStatus().GetStopSignal(); got != runtimeapi.Signal_SIGNAL_SIGQUIT {
		t.Errorf("stop_signal without one configured = %v, want the image's SIGQUIT", got)
	}
}

func TestImageRuntimeHandlerRoundTrip(t *testing.T) {
	needRoot(t)
	_, imageName := featureImage(t)
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()
	withHandler := &runtimeapi.ImageSpec{Image: imageName, RuntimeHandler: "runc"}

	ref, err := d.Images.PullImage(ctx, withHandler, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.Images.ImageStatus(ctx, withHandler, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetImage().GetId() != ref || st.GetImage().GetSpec().GetRuntimeHandler() != "runc" {
		t.Errorf("ImageStatus = %v, want id %s and spec.runtime_handler runc", st.GetImage(), ref)
	}
	// One store for all handlers: the default handler sees the same image.
	st, err = d.Images.ImageStatus(ctx, spec(imageName), false)
	if err != nil || st.GetImage().GetId() != ref || st.GetImage().GetSpec().GetRuntimeHandler() != "" {
		t.Errorf("ImageStatus without handler = %v, %v", st.GetImage(), err)
	}
	list, err := d.Images.ListImages(ctx, &runtimeapi.ImageFilter{Image: withHandler})
	if err != nil || len(list) != 1 || list[0].GetId() != ref || list[0].GetSpec().GetRuntimeHandler() != "runc" {
		t.Errorf("ListImages with handler = %v, %v", list, err)
	}

	bad := &runtimeapi.ImageSpec{Image: imageName, RuntimeHandler: "no-such-handler"}
	if _, err := d.Images.PullImage(ctx, bad, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("PullImage with an unknown handler: %v, want InvalidArgument", err)
	}
	if _, err := d.Images.ImageStatus(ctx, bad, false); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ImageStatus with an unknown handler: %v, want InvalidArgument", err)
	}
	if err := d.Images.RemoveImage(ctx, bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RemoveImage with an unknown handler: %v, want InvalidArgument", err)
	}

	if err := d.Images.RemoveImage(ctx, withHandler); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Images.ImageStatus(ctx, spec(imageName), false); err != nil || st.GetImage() != nil {
		t.Errorf("after RemoveImage for handler runc, the shared store still has %v (%v)", st.GetImage(), err)
	}
}
