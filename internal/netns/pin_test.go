package netns

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestPinValidation(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "ns")
	cases := []struct {
		name  string
		dir   string
		kinds []Kind
	}{
		{"relative dir", "pods/x/ns", []Kind{Net}},
		{"unclean dir", abs + "/../ns", []Kind{Net}},
		{"root dir", "/", []Kind{Net}},
		{"empty dir", "", []Kind{Net}},
		{"no kinds", abs, nil},
		{"unknown kind", abs, []Kind{"mnt"}},
		{"duplicate kind", abs, []Kind{Net, UTS, Net}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Pin(c.dir, c.kinds...)
			wantKind(t, err, errdefs.ErrInvalidArgument)
			if _, statErr := os.Stat(abs); !os.IsNotExist(statErr) {
				t.Fatalf("rejected Pin created %s", abs)
			}
		})
	}
	wantKind(t, Unpin("relative/ns"), errdefs.ErrInvalidArgument)
}

func TestPinCreatesDistinctNamespacesThatOutliveTheirThread(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	p, err := Pin(dir, Net, IPC, UTS)
	if err != nil {
		t.Fatal(err)
	}
	if p.Dir() != dir || !slices.Equal(p.Kinds(), []Kind{Net, IPC, UTS}) {
		t.Fatalf("Pinned = %+v", p)
	}
	for _, k := range []Kind{Net, IPC, UTS} {
		path := p.Path(k)
		if path != filepath.Join(dir, string(k)) || path != PathOf(dir, k) {
			t.Fatalf("Path(%s) = %q", k, path)
		}
		if !Exists(path) {
			t.Fatalf("%s pin %s is not a namespace file", k, path)
		}
		pinned, host := nsIno(t, path), nsIno(t, "/proc/self/ns/"+string(k))
		if pinned == host {
			t.Fatalf("%s pin is the host's namespace (inode %d)", k, host)
		}
		// The creating thread is discarded, so soon no thread of ours is
		// in the namespace: the bind mount alone keeps it alive.
		eventually(t, "no thread is left in the new "+string(k)+" namespace", func() bool {
			return len(threadsIn(t, k, pinned)) == 0
		})
		if !Exists(path) || nsIno(t, path) != pinned {
			t.Fatalf("%s namespace did not survive its creating thread", k)
		}
	}
	// The namespaces are new, not shared between pins.
	other := pinDir(t)
	q, err := Pin(other, Net)
	if err != nil {
		t.Fatal(err)
	}
	if nsIno(t, q.Path(Net)) == nsIno(t, p.Path(Net)) {
		t.Fatal("two pins share one network namespace")
	}
}

func TestPinOnlyRequestedKinds(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	p, err := Pin(dir, UTS)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path(Net) != "" || p.Path(IPC) != "" {
		t.Fatalf("unrequested kinds have paths: %q %q", p.Path(Net), p.Path(IPC))
	}
	for _, k := range []Kind{Net, IPC} {
		if _, err := os.Lstat(PathOf(dir, k)); !os.IsNotExist(err) {
			t.Fatalf("%s file exists though not requested: %v", k, err)
		}
	}
	if !Exists(p.Path(UTS)) {
		t.Fatal("UTS not pinned")
	}
}

func TestNewNetnsHasOnlyLoopbackAndItIsUp(t *testing.T) {
	needRoot(t)
	p, err := Pin(pinDir(t), Net)
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []net.Interface
	if err := Do(p.Path(Net), func() (err error) {
		ifaces, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("interfaces in new netns = %v, want only lo", ifaces)
	}
	if ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("lo is down: %v", ifaces[0].Flags)
	}
	// Localhost works: a listener and a dial inside the namespace.
	if err := Do(p.Path(Net), func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatalf("localhost inside the netns: %v", err)
	}
}

func TestUnpinIsIdempotentAndLeavesNoMount(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	p, err := Pin(dir, Net, IPC, UTS)
	if err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, "self", dir); len(got) != 4 {
		t.Fatalf("mounts under %s after Pin = %v, want the dir and 3 pins", dir, got)
	}
	netPath := p.Path(Net)
	for i := range 3 {
		if err := Unpin(dir); err != nil {
			t.Fatalf("Unpin #%d: %v", i+1, err)
		}
		if got := mountsUnder(t, "self", dir); len(got) != 0 {
			t.Fatalf("mounts left after Unpin #%d: %v", i+1, got)
		}
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Fatalf("pin dir still there after Unpin: %v", err)
		}
		if Exists(netPath) {
			t.Fatal("netns still pinned")
		}
	}
	// Never pinned at all.
	if err := Unpin(filepath.Join(t.TempDir(), "never")); err != nil {
		t.Fatal(err)
	}
}

func TestUnpinKeepsForeignFiles(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	if _, err := Pin(dir, Net); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "notes")
	if err := os.WriteFile(foreign, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	// The dir mount is a bind of the directory onto itself, so the file is
	// in the directory itself and keeps it.
	if got := mountsUnder(t, "self", dir); len(got) != 0 {
		t.Fatalf("mounts left: %v", got)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Unpin removed a directory it did not own alone: %v", err)
	}
}

// TestUnpinPartialStates builds each state a crash inside Pin can leave and
// checks Unpin clears it.
func TestUnpinPartialStates(t *testing.T) {
	needRoot(t)
	states := map[string]func(t *testing.T, dir string){
		"empty files, no mounts": func(t *testing.T, dir string) {
			mkdir(t, dir)
			for _, k := range allKinds {
				touch(t, PathOf(dir, k))
			}
		},
		"dir mount only": func(t *testing.T, dir string) {
			mkdir(t, dir)
			if err := ownPeerGroup(dir); err != nil {
				t.Fatal(err)
			}
		},
		"dir mount, one pin, one empty file": func(t *testing.T, dir string) {
			mkdir(t, dir)
			if err := ownPeerGroup(dir); err != nil {
				t.Fatal(err)
			}
			touch(t, PathOf(dir, Net))
			touch(t, PathOf(dir, UTS))
			if err := unix.Mount("/proc/self/ns/net", PathOf(dir, Net), "", unix.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
		},
		"pin stacked twice": func(t *testing.T, dir string) {
			mkdir(t, dir)
			touch(t, PathOf(dir, IPC))
			for range 2 {
				if err := unix.Mount("/proc/self/ns/ipc", PathOf(dir, IPC), "", unix.MS_BIND, ""); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
	for name, build := range states {
		t.Run(name, func(t *testing.T) {
			dir := pinDir(t)
			build(t, dir)
			if err := Unpin(dir); err != nil {
				t.Fatal(err)
			}
			if got := mountsUnder(t, "self", dir); len(got) != 0 {
				t.Fatalf("mounts left: %v", got)
			}
			if _, err := os.Lstat(dir); !os.IsNotExist(err) {
				t.Fatalf("dir left: %v", err)
			}
		})
	}
}

func TestPinReusesCrashLeftoversButRefusesLivePins(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	mkdir(t, dir)
	if err := ownPeerGroup(dir); err != nil {
		t.Fatal(err)
	}
	touch(t, PathOf(dir, Net))
	p, err := Pin(dir, Net, UTS)
	if err != nil {
		t.Fatalf("Pin over crash leftovers: %v", err)
	}
	if got := mountsUnder(t, "self", dir); len(got) != 3 {
		t.Fatalf("mounts = %v, want the dir and 2 pins (no second dir mount)", got)
	}
	ino := nsIno(t, p.Path(Net))

	_, err = Pin(dir, IPC)
	wantKind(t, err, errdefs.ErrAlreadyExists)
	if !Exists(p.Path(Net)) || nsIno(t, p.Path(Net)) != ino {
		t.Fatal("refused Pin disturbed the live pin")
	}
}

func TestPinFailureUndoesItself(t *testing.T) {
	needRoot(t)
	dir := pinDir(t)
	mkdir(t, dir)
	// A directory where the UTS pin file should go makes the file step fail
	// after the dir mount and the net file exist.
	mkdir(t, PathOf(dir, UTS))
	if _, err := Pin(dir, Net, UTS); err == nil {
		t.Fatal("Pin succeeded over a directory")
	}
	if got := mountsUnder(t, "self", dir); len(got) != 0 {
		t.Fatalf("failed Pin left mounts: %v", got)
	}
	if _, err := os.Lstat(PathOf(dir, Net)); !os.IsNotExist(err) {
		t.Fatalf("failed Pin left its net file: %v", err)
	}
}

// TestUnpinReachesLaterMountNamespaces: a mount namespace cloned while the
// pod runs (as systemd does for PrivateTmp services) gets a copy of the pins;
// Unpin must remove that copy too, or the namespace lives on in it.
func TestUnpinReachesLaterMountNamespaces(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not installed")
	}
	dir := pinDir(t)
	if _, err := Pin(dir, Net, IPC); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "slave", "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	eventually(t, "the child has its own mount namespace with our pins", func() bool {
		return nsIno(t, "/proc/"+pid+"/ns/mnt") != nsIno(t, "/proc/self/ns/mnt") &&
			len(mountsUnder(t, pid, dir)) == 3
	})
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(t, pid, dir); len(got) != 0 {
		t.Fatalf("the other mount namespace still holds %v after Unpin", got)
	}
}

const helperEnv = "CRADLE_NETNS_TEST_HELPER"

// TestPinsDoNotMultiplyUnderRsharedRoot runs in a private mount namespace
// (a child process) whose / is made rshared with a second view of the test
// directory bound elsewhere, as on a node with / shared and bind mounts of
// state dirs. Each namespace must be mounted exactly once.
func TestPinsDoNotMultiplyUnderRsharedRoot(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRsharedRoot$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	t.Logf("helper:\n%s", out)
}

func TestHelperRsharedRoot(t *testing.T) {
	base := os.Getenv(helperEnv)
	if base == "" {
		t.Skip("helper for TestPinsDoNotMultiplyUnderRsharedRoot")
	}
	// Cut every tie with the host's mount namespace first: when the host's
	// / is itself rshared (as the critest harness leaves it), this new
	// namespace's mounts would otherwise propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	a, view := filepath.Join(base, "a"), filepath.Join(base, "view")
	mkdir(t, a)
	mkdir(t, view)
	// view becomes a peer of / showing a's contents.
	if err := unix.Mount(a, view, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(a, "pod", "ns")
	if _, err := Pin(dir, Net, IPC, UTS); err != nil {
		t.Fatal(err)
	}
	var nsfs []mountEntry
	for _, m := range mountsUnder(t, "self", base) {
		if m.fstype == "nsfs" {
			nsfs = append(nsfs, m)
		}
	}
	if len(nsfs) != 3 {
		t.Fatalf("nsfs mounts under %s = %v, want exactly 3", base, nsfs)
	}
	// The pin dir is shared (so unmounts reach later mount namespaces) but
	// not in /'s peer group.
	group := func(point string) string {
		for _, m := range mounts(t, "self") {
			if m.point == point {
				for _, f := range strings.Fields(m.propagation) {
					if strings.HasPrefix(f, "shared:") {
						return f
					}
				}
				t.Fatalf("%s is not shared: %q", point, m.propagation)
			}
		}
		t.Fatalf("%s is not a mount point", point)
		return ""
	}
	if g, root := group(dir), group("/"); g == root {
		t.Fatalf("pin dir is in /'s peer group %s", g)
	}
	if err := Unpin(dir); err != nil {
		t.Fatal(err)
	}
	for _, m := range mountsUnder(t, "self", base) {
		if m.point != view {
			t.Fatalf("left after Unpin: %+v", m)
		}
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o400); err != nil {
		t.Fatal(err)
	}
}
