package testkit

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// goBuildTimeout bounds one `go build`; a cold build cache on two cores takes
// a few seconds, a hung toolchain must not hang the test binary.
const goBuildTimeout = 5 * time.Minute

var goBinaries sync.Map // cache key -> func() ([]byte, error)

// GoBinaryLayer builds pkg (an import path in this module, or a directory
// path starting with ".", ".." or "/") into a static binary (CGO_ENABLED=0,
// -trimpath, stripped) and returns a layer holding it at dest with mode 0755
// plus its parent directories. Each package is built once per process; the
// binary is kept in memory, so nothing is left on disk.
func GoBinaryLayer(pkg, dest string, c Compression) (v1.Layer, error) {
	name := strings.TrimPrefix(path.Clean("/"+dest), "/")
	if dest == "" || name == "" || strings.HasSuffix(dest, "/") {
		return nil, errdefs.InvalidArgument("testkit: GoBinaryLayer destination %q is not a file path", dest)
	}
	bin, err := GoBinary(pkg)
	if err != nil {
		return nil, err
	}
	var entries []Entry
	for _, d := range parentDirs(name) {
		entries = append(entries, Dir(d+"/"))
	}
	entries = append(entries, Entry{Name: name, Content: bin, Mode: 0o755, Type: tar.TypeReg})
	return NewLayer(entries, c)
}

// GoBinary returns the static binary GoBinaryLayer puts in its layer.
func GoBinary(pkg string) ([]byte, error) {
	if pkg == "" {
		return nil, errdefs.InvalidArgument("testkit: empty Go package")
	}
	dir, target := moduleRoot(), pkg
	if isFilePath(pkg) {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			return nil, errdefs.InvalidArgument("testkit: Go package %q: %v", pkg, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, errdefs.NotFound("testkit: Go package directory %s does not exist", abs)
		}
		dir, target = abs, "."
	}
	key := dir + "\x00" + target
	build, _ := goBinaries.LoadOrStore(key, sync.OnceValues(func() ([]byte, error) {
		return goBuild(dir, target, pkg)
	}))
	return build.(func() ([]byte, error))()
}

func isFilePath(pkg string) bool {
	return pkg == "." || pkg == ".." || strings.HasPrefix(pkg, "./") ||
		strings.HasPrefix(pkg, "../") || filepath.IsAbs(pkg)
}

func goBuild(dir, target, pkg string) ([]byte, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, serr := os.Stat(goTool); serr != nil {
			return nil, errdefs.FailedPrecondition("testkit: the go tool is not on PATH: %v", err)
		}
	}
	tmp, err := os.MkdirTemp("", "testkit-gobuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")

	ctx, cancel := context.WithTimeout(context.Background(), goBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w", "-o", out, target)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, errdefs.InvalidArgument("testkit: go build %s: %v\n%s", pkg, err, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("testkit: go build %s: %w", pkg, err)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("testkit: go build %s: %w", pkg, err)
	}
	static, err := isStaticELF(bin)
	if err != nil || !static {
		return nil, errdefs.FailedPrecondition("testkit: go build %s did not produce a static ELF binary (err=%v)", pkg, err)
	}
	return bin, nil
}

// moduleRoot is the directory of this module's go.mod, found from this source
// file so that import paths resolve whatever the caller's working directory.
// Under -trimpath the source path is unknown and the working directory is used.
func moduleRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		for dir := filepath.Dir(file); ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir
			}
			if parent := filepath.Dir(dir); parent == dir {
				break
			}
		}
	}
	wd, _ := os.Getwd()
	return wd
}

// parentDirs lists the ancestors of a relative slash path, outermost first.
func parentDirs(name string) []string {
	var dirs []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		dirs = append([]string{d}, dirs...)
	}
	return dirs
}
