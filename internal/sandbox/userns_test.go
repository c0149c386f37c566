package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/userns"
)

func usernsPod(name string) *runtimeapi.PodSandboxConfig {
	c := podConfig(name)
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 1000, Length: 65536}}
	c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &runtimeapi.UserNamespace{
		Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m,
	}
	return c
}

// searchable gives the test's temporary dirs above the state dir the o+x
// the daemon's own dirs have (0711), as a pod's root needs.
func searchable(t *testing.T, e *env) {
	t.Helper()
	if err := os.MkdirAll(e.state, 0o711); err != nil {
		t.Fatal(err)
	}
	for d := e.state; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
			t.Fatal(err)
		}
	}
}

func ownerIno(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, 0xb701) // NS_GET_USERNS
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestUsernsPodLifecycle(t *testing.T) {
	e := newEnv(t, true)
	searchable(t, e)
	m := e.manager(t)
	ctx := context.Background()
	id, err := m.Run(ctx, usernsPod("owned"), "")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if sb.UserNS == "" || !userns.Exists(sb.UserNS) {
		t.Fatalf("pod user namespace %q is not pinned", sb.UserNS)
	}
	var st unix.Stat_t
	if err := unix.Stat(sb.UserNS, &st); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{sb.NetNS, sb.IPCNS, sb.UTSNS} {
		if got := ownerIno(t, ns); got != st.Ino {
			t.Errorf("%s is owned by user namespace %d, want the pod's %d", ns, got, st.Ino)
		}
	}
	if h := hostnameIn(t, sb.UTSNS); h != "owned" {
		t.Errorf("hostname %q", h)
	}
	if st, err := os.Stat(filepath.Join(e.state, "pods")); err != nil || st.Mode().Perm()&0o001 == 0 {
		t.Errorf("pods dir not searchable by the pod's root: %v %v", st.Mode(), err)
	}

	if err := m.Stop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if userns.Exists(sb.UserNS) {
		t.Error("user namespace still pinned after Stop")
	}
	if mps := mountsUnder(t, e.state); len(mps) > 0 {
		t.Errorf("mounts left after Stop: %v", mps)
	}
	if err := m.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.assertNoTrace(t)
}

// A state dir the pod's root cannot pass through is refused before any
// namespace exists, with a message that says what to change.
func TestUsernsUnsearchableStateDir(t *testing.T) {
	e := newEnv(t, true)
	m := e.manager(t)
	if err := os.Chmod(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := m.Run(context.Background(), usernsPod("locked"), "")
	wantKind(t, err, errdefs.ErrFailedPrecondition)
	e.assertNoTrace(t)
}

// A crash right after the pins were made: the next New removes them.
func TestUsernsCrashAfterPinIsUndone(t *testing.T) {
	e := newEnv(t, true)
	searchable(t, e)
	m := e.manager(t)
	crashed := make(chan struct{})
	m.beforeStep = func(s string) error {
		if s == stepHostname {
			close(crashed)
			runtime.Goexit()
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := m.Run(ctx, usernsPod("crashy"), "")
		done <- err
	}()
	<-crashed
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run of a crashed creation: %v", err)
	}
	pins, _ := filepath.Glob(filepath.Join(e.state, "pods", "*", "userns", "user"))
	if len(pins) != 1 || !userns.Exists(pins[0]) {
		t.Fatalf("test setup: the crash should leave one pinned user namespace, got %v", pins)
	}
	e.manager(t)
	if userns.Exists(pins[0]) {
		t.Error("user namespace still pinned after recovery")
	}
	e.assertNoTrace(t)
}
