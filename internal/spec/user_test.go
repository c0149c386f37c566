package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func i64(v int64) *runtimeapi.Int64Value { return &runtimeapi.Int64Value{Value: v} }

func resolve(t *testing.T, imageUser string, sc *runtimeapi.LinuxContainerSecurityContext, root fstest.MapFS) (specs.User, error) {
	t.Helper()
	in := Input{RootFS: root}
	in.Image.User = imageUser
	return resolveUser(&in, sc)
}

func TestResolveUser(t *testing.T) {
	strict := runtimeapi.SupplementalGroupsPolicy_Strict
	cases := []struct {
		name  string
		image string
		sc    *runtimeapi.LinuxContainerSecurityContext
		want  specs.User
	}{
		{"no user is root", "", nil, specs.User{UID: 0, GID: 0, AdditionalGids: []uint32{0}}},
		{"image uid from passwd", "1000", nil, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{29, 44, 1000}}},
		{"image name", "web", nil, specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{29, 33, 50}}},
		{"image uid:gid", "1000:50", nil, specs.User{UID: 1000, GID: 50, AdditionalGids: []uint32{29, 44, 50}}},
		{"image name:group", "app:staff", nil, specs.User{UID: 1000, GID: 50, AdditionalGids: []uint32{29, 44, 50}}},
		{"image uid:group", "1000:audio", nil, specs.User{UID: 1000, GID: 29, AdditionalGids: []uint32{29, 44}}},
		{"unknown uid runs with gid 0", "4321", nil, specs.User{UID: 4321, GID: 0, AdditionalGids: []uint32{0}}},
		{"primary gid without a group entry", "nogroup", nil, specs.User{UID: 1500, GID: 4242, AdditionalGids: []uint32{4242}}},
		{"run_as_user beats the image", "web",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000)},
			specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{29, 44, 1000}}},
		{"run_as_user ignores the image group", "web:staff",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(33)},
			specs.User{UID: 33, GID: 33, AdditionalGids: []uint32{29, 33, 50}}},
		{"run_as_username", "",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "app"},
			specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{29, 44, 1000}}},
		{"run_as_group", "",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000)},
			specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{29, 44, 3000}}},
		// The KEP-3619 e2e case: Merge keeps the image's groups, Strict drops them.
		{"merge with supplemental groups", "",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{60000, 44}},
			specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{29, 44, 3000, 60000}}},
		{"strict", "",
			&runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000), SupplementalGroups: []int64{60000}, SupplementalGroupsPolicy: strict},
			specs.User{UID: 1000, GID: 3000, AdditionalGids: []uint32{3000, 60000}}},
		{"strict with image user", "app", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: strict},
			specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000}}},
		{"max id", "2147483647:2147483647", nil, specs.User{UID: maxID, GID: maxID, AdditionalGids: []uint32{maxID}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolve(t, c.image, c.sc, testRootFS())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Fatalf("user (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveUserErrors(t *testing.T) {
	cases := []struct {
		name   string
		image  string
		sc     *runtimeapi.LinuxContainerSecurityContext
		substr string
	}{
		{"unknown image user", "nobody", nil, `user "nobody" not found`},
		{"unknown run_as_username", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "ghost"}, `user "ghost" not found`},
		{"unknown group", "app:wheel", nil, `group "wheel" not found`},
		{"both user fields", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1), RunAsUsername: "app"}, "both set"},
		{"group without user", "", &runtimeapi.LinuxContainerSecurityContext{RunAsGroup: i64(5)}, "run_as_group is set without"},
		{"negative uid", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(-1)}, "run_as_user -1"},
		{"huge uid", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1 << 32)}, "outside"},
		{"huge gid", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUser: i64(1), RunAsGroup: i64(1 << 31)}, "run_as_group"},
		{"huge image uid", "99999999999999999999", nil, "out of range"},
		{"image uid above runc's limit", "2147483648", nil, "outside"},
		{"bad supplemental group", "", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroups: []int64{-4}}, "supplemental group -4"},
		{"numeric username must exist", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "1000"}, `user "1000" not found`},
		{"colon in username", "", &runtimeapi.LinuxContainerSecurityContext{RunAsUsername: "a:b"}, "contains ':'"},
		{"empty image user part", ":100", nil, "invalid image USER"},
		{"empty image group part", "app:", nil, "invalid image USER"},
		{"two colons", "a:b:c", nil, "invalid image USER"},
		{"unknown policy", "", &runtimeapi.LinuxContainerSecurityContext{SupplementalGroupsPolicy: 7},
			"not implemented in this cradle release: SupplementalGroupsPolicy=7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := resolve(t, c.image, c.sc, testRootFS())
			wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
		})
	}
}

func TestResolveUserWithoutAccountFiles(t *testing.T) {
	// distroless-style images: numeric users work, names cannot.
	got, err := resolve(t, "65532", nil, fstest.MapFS{})
	if err != nil {
		t.Fatal(err)
	}
	if want := (specs.User{UID: 65532, AdditionalGids: []uint32{0}}); !cmp.Equal(got, want) {
		t.Fatalf("user = %+v, want %+v", got, want)
	}
	_, err = resolve(t, "app", nil, fstest.MapFS{})
	wantErr(t, err, errdefs.ErrInvalidArgument, `user "app" not found`)
}

func TestResolveUserSkipsMalformedLines(t *testing.T) {
	root := testRootFS()
	root["etc/passwd"] = &fstest.MapFile{Data: []byte(strings.Join([]string{
		"# comment",
		"+nis:x:0:0:::",
		"app:x:notanumber:1:::", // must not become uid 0
		"short:x:5",
		"neg:x:-1:5::/:/bin/sh",
		":x:6:6:::",
		"ok:x:7:8",
	}, "\n"))}
	root["etc/group"] = &fstest.MapFile{Data: []byte("bad:x:zz:ok\nfine:x:9: ok , \n")}
	for _, name := range []string{"app", "short", "neg", "nis", "+nis"} {
		_, err := resolve(t, name, nil, root)
		wantErr(t, err, errdefs.ErrInvalidArgument, "not found")
	}
	got, err := resolve(t, "ok", nil, root)
	if err != nil {
		t.Fatal(err)
	}
	if want := (specs.User{UID: 7, GID: 8, AdditionalGids: []uint32{8, 9}}); !cmp.Equal(got, want) {
		t.Fatalf("user = %+v, want %+v", got, want)
	}
}

func TestResolveUserLineTooLong(t *testing.T) {
	root := fstest.MapFS{"etc/passwd": {Data: []byte(strings.Repeat("x", 2<<20) + "\n")}}
	_, err := resolve(t, "app", nil, root)
	wantErr(t, err, errdefs.ErrInvalidArgument, "parse /etc/passwd")
}

func TestResolveUserFollowsSymlinksInsideTheImage(t *testing.T) {
	passwd := testRootFS()["etc/passwd"].Data
	group := testRootFS()["etc/group"].Data
	root := fstest.MapFS{
		// absolute link, as Nix or ostree images have
		"etc/passwd":            {Data: []byte("/usr/share/base/passwd"), Mode: os.ModeSymlink},
		"usr/share/base/passwd": {Data: passwd},
		// relative link through a linked directory and ".."
		"etc/group":        {Data: []byte("../data/../lib/group"), Mode: os.ModeSymlink},
		"lib":              {Data: []byte("usr/lib"), Mode: os.ModeSymlink},
		"usr/lib/group":    {Data: group},
		"data/placeholder": {Data: nil},
	}
	got, err := resolve(t, "app", nil, root)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{29, 44, 1000}; !cmp.Equal(got.AdditionalGids, want) {
		t.Fatalf("gids = %v, want %v", got.AdditionalGids, want)
	}
}

func TestResolveInRoot(t *testing.T) {
	root := fstest.MapFS{
		"etc/passwd":  {Data: []byte("../../../../../host/passwd"), Mode: os.ModeSymlink},
		"host/passwd": {Data: []byte("inside")},
		"loop/a":      {Data: []byte("b"), Mode: os.ModeSymlink},
		"loop/b":      {Data: []byte("a"), Mode: os.ModeSymlink},
		"abs":         {Data: []byte("/host//./passwd"), Mode: os.ModeSymlink},
	}
	got, err := resolveInRoot(root, "/etc/passwd")
	if err != nil || got != "/host/passwd" {
		t.Fatalf("escaping link resolved to %q, %v; want it clamped to /host/passwd", got, err)
	}
	if got, err := resolveInRoot(root, "abs"); err != nil || got != "/host/passwd" {
		t.Fatalf("absolute link = %q, %v", got, err)
	}
	if _, err := resolveInRoot(root, "/loop/a"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Fatalf("symlink loop: %v", err)
	}
	if _, err := resolveInRoot(root, "/missing/file"); !os.IsNotExist(err) {
		t.Fatalf("missing path: %v", err)
	}
}

// TestResolveUserOnDiskStaysInRoot uses the default os.OpenRoot path: an
// image whose /etc/passwd links to a host file must not read the host's.
func TestResolveUserOnDiskStaysInRoot(t *testing.T) {
	dir := t.TempDir()
	host := filepath.Join(dir, "host-passwd")
	if err := os.WriteFile(host, []byte("evil:x:0:0::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(rootfs, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	in := Input{RootfsPath: rootfs}
	in.Image.User = "evil"
	_, err := resolveUser(&in, nil)
	wantErr(t, err, errdefs.ErrInvalidArgument, `user "evil" not found`)

	// A well-formed rootfs on disk resolves.
	if err := os.Remove(filepath.Join(rootfs, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("svc:x:700:701::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in.Image.User = "svc"
	got, err := resolveUser(&in, nil)
	if err != nil || got.UID != 700 || got.GID != 701 {
		t.Fatalf("user = %+v, %v", got, err)
	}

	in.RootfsPath = filepath.Join(dir, "missing")
	_, err = resolveUser(&in, nil)
	wantErr(t, err, errdefs.ErrFailedPrecondition, "open container rootfs")
}

func TestResolveUserBoundsFileSize(t *testing.T) {
	// A hostile image cannot make the daemon parse an endless file: reading
	// stops at the cap, so a user listed after it is not found.
	big := strings.Repeat("#"+strings.Repeat("x", 1000)+"\n", maxAccountsFile/1000+10) + "late:x:5:5::/:/bin/sh\n"
	root := fstest.MapFS{"etc/passwd": {Data: []byte(big)}}
	_, err := resolve(t, "late", nil, root)
	wantErr(t, err, errdefs.ErrInvalidArgument, `user "late" not found`)
}

func TestResolveUserIDsInFilesOutOfRange(t *testing.T) {
	root := fstest.MapFS{
		"etc/passwd": {Data: []byte("big:x:3000000000:5\npg:x:5:3000000000\nok:x:6:6\n")},
		"etc/group":  {Data: []byte("huge:x:3000000000:ok\nsmall:x:7:ok\n")},
	}
	for _, c := range []struct{ user, substr string }{
		{"big", "uid of user big"},
		{"pg", "primary gid of user pg"},
		{"ok:huge", "gid of group huge"},
	} {
		_, err := resolve(t, c.user, nil, root)
		wantErr(t, err, errdefs.ErrInvalidArgument, c.substr)
	}
	// A member group with an impossible gid is skipped, not fatal.
	got, err := resolve(t, "ok", nil, root)
	if err != nil || !cmp.Equal(got.AdditionalGids, []uint32{6, 7}) {
		t.Fatalf("gids = %v, %v", got.AdditionalGids, err)
	}
}
