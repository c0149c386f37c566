package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

var testOpts = &Options{UID: Mapping{0, 1000, 100000}, GID: Mapping{0, 2000, 100000}}

// mountsUnder lists the mount points under dir from our mountinfo.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// nsIno is the inode of the namespace file at path.
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// ownerIno is the inode of the user namespace that owns the namespace at
// path (ioctl NS_GET_USERNS).
func ownerIno(t *testing.T, path string) uint64 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const nsGetUserns = 0xb701 // _IO(0xb7, 0x1)
	owner, err := unix.IoctlRetInt(fd, nsGetUserns)
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

func TestPinOwnsPodNamespacesAndUnpinLeavesNothing(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	udir, ndir := filepath.Join(dir, "userns"), filepath.Join(dir, "ns")

	h, err := Spawn(testOpts, unix.CLONE_NEWNET|unix.CLONE_NEWUTS|unix.CLONE_NEWIPC)
	if err != nil {
		t.Fatal(err)
	}
	maps, _ := os.ReadFile("/proc/" + strconv.Itoa(h.Pid) + "/uid_map")
	gmaps, _ := os.ReadFile("/proc/" + strconv.Itoa(h.Pid) + "/gid_map")
	setgroups, _ := os.ReadFile("/proc/" + strconv.Itoa(h.Pid) + "/setgroups")
	path, err := Pin(udir, h)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	if _, err := netns.PinFrom(ndir, h.Pid, netns.Net, netns.IPC, netns.UTS); err != nil {
		h.Close()
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(h.Pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("holder %d still exists after Close: %v", h.Pid, err)
	}

	// The kernel has the requested maps, setgroups is allowed, and the pins
	// outlive the holder.
	if m, err := ParseMap(string(maps)); err != nil || len(m) != 1 || m[0] != testOpts.UID {
		t.Errorf("uid_map = %q (%v)", maps, err)
	}
	if m, err := ParseMap(string(gmaps)); err != nil || len(m) != 1 || m[0] != testOpts.GID {
		t.Errorf("gid_map = %q (%v)", gmaps, err)
	}
	if strings.TrimSpace(string(setgroups)) != "allow" {
		t.Errorf("setgroups = %q, want allow", setgroups)
	}
	if !Exists(path) {
		t.Fatalf("%s is not a namespace after the holder died", path)
	}
	if nsIno(t, path) == nsIno(t, "/proc/self/ns/user") {
		t.Fatal("pinned the host's user namespace")
	}
	// Each pod namespace belongs to the pod's user namespace, not the host's.
	for _, k := range []netns.Kind{netns.Net, netns.IPC, netns.UTS} {
		p := netns.PathOf(ndir, k)
		if got, want := ownerIno(t, p), nsIno(t, path); got != want {
			t.Errorf("%s namespace is owned by user namespace %d, want the pod's %d", k, got, want)
		}
	}
	// Pinning again over a live pin is refused, and changes nothing.
	h2, err := Spawn(testOpts, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Pin(udir, h2)
	h2.Close()
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !Exists(path) {
		t.Errorf("second Pin = %v (pin alive: %v)", err, Exists(path))
	}

	if err := netns.Unpin(ndir); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := Unpin(udir); err != nil {
			t.Fatal(err)
		}
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(udir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir left: %v", err)
	}
}

// A crash can leave the directory mount and an empty pin file without the
// namespace mount; Unpin takes that too.
func TestUnpinPartialState(t *testing.T) {
	needRoot(t)
	udir := filepath.Join(t.TempDir(), "userns")
	if err := os.MkdirAll(udir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := ownPeerGroup(udir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(PathOf(udir), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := Unpin(udir); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, udir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(udir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin dir left: %v", err)
	}
}

func TestPinRejectsBadDir(t *testing.T) {
	for _, d := range []string{"", "rel", "/", "/a/../b"} {
		if _, err := Pin(d, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Pin(%q) = %v", d, err)
		}
		if err := Unpin(d); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Unpin(%q) = %v", d, err)
		}
	}
	if _, err := Spawn(nil, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Spawn(nil) = %v", err)
	}
	if _, err := Spawn(&Options{UID: Mapping{0, 0, 10}, GID: Mapping{0, 1000, 10}}, 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Spawn(host root) = %v", err)
	}
}
