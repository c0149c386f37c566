package spec

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestOSDeviceNode(t *testing.T) {
	devs, err := OS{}.Devices("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 {
		t.Fatalf("devices = %+v", devs)
	}
	d := devs[0]
	if d.Path != "/dev/null" || d.Type != "c" || d.Major != 1 || d.Minor != 3 || *d.FileMode&0o777 != 0o666 {
		t.Fatalf("/dev/null = %+v (mode %v)", d, *d.FileMode)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (OS{}).Devices(file); !errors.Is(err, ErrNotDevice) {
		t.Fatalf("regular file: %v", err)
	}
	if _, err := (OS{}).Devices(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}

func TestOSDeviceDirectoryWalk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	mk := func(rel string, mode uint32, dev int) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(p, mode, dev); err != nil {
			t.Skipf("mknod: %v", err)
		}
	}
	mk("null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	mk("sub/zero", unix.S_IFCHR|0o640, int(unix.Mkdev(1, 5)))
	mk("loop0", unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0)))
	mk("pts/0", unix.S_IFCHR|0o620, int(unix.Mkdev(136, 0))) // skipped directory
	mk("console", unix.S_IFCHR|0o600, int(unix.Mkdev(5, 1))) // skipped name
	mk("fifo", unix.S_IFIFO|0o600, 0)                        // not a device
	if err := os.Symlink("null", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	devs, err := OS{}.Devices(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, strings.TrimPrefix(d.Path, dir)+":"+d.Type)
	}
	if want := []string{"/loop0:b", "/null:c", "/sub/zero:c"}; !cmp.Equal(got, want) {
		t.Fatalf("walk = %v, want %v", got, want)
	}
}

func TestOSHostDevices(t *testing.T) {
	devs, err := OS{}.Devices("/dev")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range devs {
		paths = append(paths, d.Path)
		if strings.HasPrefix(d.Path, "/dev/pts/") || d.Path == "/dev/console" {
			t.Errorf("host devices include %s", d.Path)
		}
	}
	if !slices.Contains(paths, "/dev/null") {
		t.Fatalf("host devices lack /dev/null: %v", paths)
	}
}

func TestOSReadFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := (OS{}).ReadFile(small); err != nil || string(b) != "{}" {
		t.Fatalf("small file: %q, %v", b, err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, maxHostFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (OS{}).ReadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized file: %v", err)
	}
	if _, err := (OS{}).ReadFile(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestOSStatAndSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if fi, err := (OS{}).Stat(link); err != nil || !fi.IsDir() {
		t.Fatalf("stat through link: %v, %v", fi, err)
	}
	if real, err := (OS{}).EvalSymlinks(link); err != nil || real != target {
		t.Fatalf("EvalSymlinks = %q, %v", real, err)
	}
}

const sampleMountinfo = `22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:35 / /mnt/my\040disk rw,relatime shared:7 master:3 - ext4 /dev/vdb rw
41 27 0:36 / /srv rw,relatime master:9 - tmpfs tmpfs rw
42 41 0:37 / /srv/private rw,relatime - tmpfs tmpfs rw
43 41 0:38 / /srv/private rw,relatime shared:12 - tmpfs tmpfs rw
`

func TestParseMountinfo(t *testing.T) {
	mounts, err := parseMountinfo(strings.NewReader(sampleMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{"/proc", "private"}, {"/", "shared"}, {"/mnt/my disk", "shared"},
		{"/srv", "slave"}, {"/srv/private", "private"}, {"/srv/private", "shared"},
	}
	if diff := cmp.Diff(want, mounts, cmp.AllowUnexported(mountEntry{})); diff != "" {
		t.Fatalf("mounts (-want +got):\n%s", diff)
	}
	for p, wantProp := range map[string]string{
		"/etc/passwd":    "shared", // falls back to /
		"/srv":           "slave",
		"/srv/data":      "slave",
		"/srvx":          "shared", // not under /srv
		"/srv/private/x": "shared", // the later of two stacked mounts
		"/mnt/my disk/a": "shared",
		"/proc/self":     "private",
	} {
		m, ok := mountOf(mounts, p)
		if !ok || m.propagation != wantProp {
			t.Errorf("%s: %+v, want %s", p, m, wantProp)
		}
	}
	if _, ok := mountOf(nil, "/x"); ok {
		t.Error("a path outside every mount was found")
	}
}

func TestOSPropagationOnThisHost(t *testing.T) {
	got, err := OS{}.Propagation(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got != "shared" && got != "slave" && got != "private" {
		t.Fatalf("propagation = %q", got)
	}
	if _, err := (OS{}).Propagation("/no/such/path"); err == nil {
		t.Fatal("missing path gave no error")
	}
}
