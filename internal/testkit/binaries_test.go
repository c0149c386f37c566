package testkit

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// extract writes the regular files and symlinks of a trusted layer under
// dir, enough to run binaries from it.
func extract(t *testing.T, hdrs []*tar.Header, bodies map[string][]byte, dir string) {
	t.Helper()
	for _, h := range hdrs {
		p := filepath.Join(dir, h.Name)
		var err error
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			err = os.WriteFile(p, bodies[h.Name], os.FileMode(h.Mode).Perm())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestBusyboxLayer(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	l, err := BusyboxLayer(Gzip)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := BusyboxLayer(Gzip); again != l {
		t.Error("BusyboxLayer is not cached per compression")
	}
	hdrs, bodies := layerTar(t, l)
	byName := map[string]*tar.Header{}
	for _, h := range hdrs {
		byName[strings.TrimSuffix(h.Name, "/")] = h
	}

	host, _ := os.ReadFile(BusyboxPath)
	bin := bodies["bin/busybox"]
	if !bytes.Equal(bin, host) || byName["bin/busybox"].Mode != 0o755 {
		t.Fatal("bin/busybox is not the host's binary with mode 0755")
	}
	if static, err := isStaticELF(bin); err != nil || !static {
		t.Errorf("bin/busybox static=%v err=%v", static, err)
	}
	for _, applet := range []string{"sh", "ls", "cat", "echo", "sleep", "id", "env", "true", "false",
		"wget", "httpd", "ps", "hostname", "mount", "grep", "head", "tail", "touch", "mkdir", "rm", "test", "["} {
		h := byName["bin/"+applet]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
			t.Errorf("bin/%s is not a symlink to busybox: %+v", applet, h)
		}
	}
	if h := byName["tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("tmp = %+v, want dir 1777", h)
	}
	if h := byName["home/app"]; h == nil || h.Uid != 1000 || h.Gid != 1000 {
		t.Errorf("home/app = %+v, want owned by 1000", h)
	}
	for _, line := range []string{"root:x:0:0:", "app:x:1000:1000:", "nobody:x:65534:65534:"} {
		if !strings.Contains(string(bodies["etc/passwd"]), "\n"+line) && !strings.HasPrefix(string(bodies["etc/passwd"]), line) {
			t.Errorf("etc/passwd lacks %q", line)
		}
	}
	if !strings.Contains(string(bodies["etc/group"]), "app:x:1000:") {
		t.Errorf("etc/group = %q", bodies["etc/group"])
	}

	// The extracted tree works: sh resolves through its symlink to busybox.
	dir := t.TempDir()
	extract(t, hdrs, bodies, dir)
	out, err := exec.Command(filepath.Join(dir, "bin/sh"), "-c", "echo ok; true").CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Errorf("bin/sh -c: %q, %v", out, err)
	}
	if err := exec.Command(filepath.Join(dir, "bin/false")).Run(); err == nil {
		t.Error("bin/false succeeded")
	}
}

func TestGoBinaryLayer(t *testing.T) {
	l := MustGoBinaryLayer(t, "./testdata/hello", "/app/bin/hello", Zstd)
	hdrs, bodies := layerTar(t, l)
	var names []string
	for _, h := range hdrs {
		names = append(names, h.Name)
	}
	if want := []string{"app/", "app/bin/", "app/bin/hello"}; !slices.Equal(names, want) {
		t.Fatalf("entries = %q, want %q", names, want)
	}
	if hdrs[2].Mode != 0o755 {
		t.Errorf("mode = %o", hdrs[2].Mode)
	}
	bin := bodies["app/bin/hello"]
	if static, err := isStaticELF(bin); err != nil || !static {
		t.Fatalf("binary static=%v err=%v", static, err)
	}

	dir := t.TempDir()
	extract(t, hdrs, bodies, dir)
	cmd := exec.Command(filepath.Join(dir, "app/bin/hello"), "a", "b")
	cmd.Env = []string{"HELLO_EXIT=3"}
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || string(out) != "hello from testkit\na b\n" {
		t.Errorf("run: out=%q err=%v", out, err)
	}

	// One build per package per process; -trimpath makes builds reproducible.
	first, err := GoBinary("./testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	second, err := GoBinary("github.com/cradle-runtime/cradle/internal/testkit/testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	cached, _ := GoBinary("./testdata/hello")
	if &first[0] != &cached[0] || !bytes.Equal(first, bin) {
		t.Error("GoBinary rebuilt a cached package")
	}
	if !bytes.Equal(first, second) {
		t.Error("import path and directory builds differ")
	}
}

func TestGoBinaryLayerErrors(t *testing.T) {
	if _, err := GoBinaryLayer("./testdata/does-not-exist", "/x", Gzip); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing directory: err = %v, want NotFound", err)
	}
	_, err := GoBinaryLayer("github.com/cradle-runtime/cradle/internal/testkit/no-such-pkg", "/x", Gzip)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no-such-pkg") {
		t.Errorf("missing import path: err = %v, want InvalidArgument naming the package", err)
	}
	for _, dest := range []string{"", "/", "dir/", ".."} {
		if _, err := GoBinaryLayer("./testdata/hello", dest, Gzip); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("dest %q: err = %v, want InvalidArgument", dest, err)
		}
	}
}
