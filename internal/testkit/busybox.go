package testkit

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BusyboxPath is where Debian's busybox-static package installs the binary.
const BusyboxPath = "/bin/busybox"

// BusyboxApplets are the /bin/<applet> symlinks BusyboxLayer creates.
var BusyboxApplets = []string{
	"sh", "ash", "ls", "cat", "echo", "sleep", "id", "env", "true", "false",
	"wget", "httpd", "ps", "hostname", "mount", "umount", "grep", "head", "tail",
	"touch", "mkdir", "rm", "test", "[", "cp", "mv", "ln", "chmod", "chown",
	"stat", "kill", "nc", "uname", "whoami", "wc", "sed", "awk", "printf",
	"pwd", "date", "dd", "readlink", "timeout", "seq", "tee", "sync", "nslookup",
}

// Files of the busybox image's /etc: root, nobody and an unprivileged "app".
const (
	busyboxPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1000:1000:app:/home/app:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	busyboxGroup = "root:x:0:\n" +
		"app:x:1000:\n" +
		"nogroup:x:65534:\n"
)

// busyboxLayers caches one layer per compression: the binary is ~2 MB and
// every test wants it.
var busyboxLayers sync.Map // Compression -> func() (v1.Layer, error)

// BusyboxLayer is a minimal root filesystem around the host's static busybox
// (Debian package busybox-static): /bin/busybox, applet symlinks, /etc/passwd
// and /etc/group, /tmp (1777), /root and /home/app. Layers are cached per
// compression for the life of the process.
func BusyboxLayer(c Compression) (v1.Layer, error) {
	build, _ := busyboxLayers.LoadOrStore(c, sync.OnceValues(func() (v1.Layer, error) {
		return buildBusyboxLayer(c)
	}))
	return build.(func() (v1.Layer, error))()
}

func buildBusyboxLayer(c Compression) (v1.Layer, error) {
	bin, err := readStaticBusybox()
	if err != nil {
		return nil, err
	}
	entries := []Entry{
		Dir("bin/"),
		{Name: "bin/busybox", Content: bin, Mode: 0o755},
	}
	for _, a := range BusyboxApplets {
		entries = append(entries, Symlink("bin/"+a, "busybox"))
	}
	entries = append(entries,
		Dir("etc/"),
		File("etc/passwd", busyboxPasswd),
		File("etc/group", busyboxGroup),
		Dir("home/"),
		Entry{Name: "home/app/", Type: tar.TypeDir, UID: 1000, GID: 1000},
		Entry{Name: "root/", Type: tar.TypeDir, Mode: 0o700},
		// 1777 needs the sticky bit in tar's mode field (c_ISVTX).
		Entry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777},
		Dir("usr/"),
		Dir("usr/bin/"),
		// Scripts commonly start with #!/usr/bin/env.
		Symlink("usr/bin/env", "/bin/busybox"),
	)
	return NewLayer(entries, c)
}

func readStaticBusybox() ([]byte, error) {
	const hint = "install it with: apt-get install busybox-static"
	bin, err := os.ReadFile(BusyboxPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errdefs.FailedPrecondition("testkit: %s not found; %s", BusyboxPath, hint)
	}
	if err != nil {
		return nil, fmt.Errorf("testkit: read busybox: %w", err)
	}
	static, err := isStaticELF(bin)
	if err != nil {
		return nil, errdefs.FailedPrecondition("testkit: %s: %v; %s", BusyboxPath, err, hint)
	}
	if !static {
		// Debian's plain "busybox" package is dynamic and would not run in
		// an image without libc.
		return nil, errdefs.FailedPrecondition("testkit: %s is dynamically linked; %s", BusyboxPath, hint)
	}
	return bin, nil
}

// isStaticELF reports whether the ELF file needs no program interpreter, i.e.
// runs in an empty root filesystem.
func isStaticELF(bin []byte) (bool, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
