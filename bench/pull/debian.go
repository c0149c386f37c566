package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// debianLayers are the packages whose installed files make up each layer of
// the "debian" image, shaped like a python image on a Debian base: the base
// system (the big layer), network tools, C headers, the interpreter, and
// pip-installed-like modules on top. A file goes into the first layer whose
// packages list it.
var debianLayers = []struct {
	name     string
	packages []string
}{
	{"base", strings.Fields(`base-files base-passwd bash dash coreutils libc6:amd64 libc-bin perl-base
		dpkg apt libapt-pkg6.0:amd64 util-linux mount findutils grep sed tar gzip ncurses-base ncurses-bin
		tzdata libssl3:amd64 login passwd debconf debianutils diffutils libstdc++6:amd64 libgcc-s1:amd64
		zlib1g:amd64 libzstd1:amd64 liblzma5:amd64 libbz2-1.0:amd64 libpam-modules:amd64 libpam-modules-bin
		libpam-runtime libpam0g:amd64 hostname mawk libselinux1:amd64 libpcre2-8-0:amd64 libcrypt1:amd64
		libacl1:amd64 libattr1:amd64 libblkid1:amd64 libmount1:amd64 libuuid1:amd64 libsmartcols1:amd64
		libudev1:amd64 libcap2:amd64 libaudit1:amd64 libaudit-common libgmp10:amd64 libnettle8:amd64
		libhogweed6:amd64 libidn2-0:amd64 libunistring2:amd64 libtasn1-6:amd64 libffi8:amd64
		libseccomp2:amd64 libgnutls30:amd64 libp11-kit0:amd64 libtinfo6:amd64 libncursesw6:amd64
		libdb5.3:amd64 libsystemd0:amd64 sensible-utils init-system-helpers adduser gpgv
		debian-archive-keyring sysvinit-utils logsave libext2fs2:amd64 e2fsprogs libcom-err2:amd64
		libss2:amd64 libsemanage2:amd64 libsemanage-common libsepol2:amd64 libdebconfclient0:amd64
		libxxhash0:amd64 liblz4-1:amd64 libgcrypt20:amd64 libgpg-error0:amd64 libkeyutils1:amd64 usr-is-merged`)},
	{"net", strings.Fields(`ca-certificates openssl libcurl4:amd64 curl libnghttp2-14:amd64 libpsl5:amd64
		librtmp1:amd64 libssh2-1:amd64 libldap-2.5-0:amd64 libkrb5-3:amd64 libgssapi-krb5-2:amd64
		libk5crypto3:amd64 libkrb5support0:amd64 libsasl2-2:amd64 libsasl2-modules-db:amd64
		libbrotli1:amd64 xz-utils bzip2 wget netbase`)},
	{"headers", strings.Fields(`libc6-dev:amd64 linux-libc-dev:amd64 libcrypt-dev:amd64 libnsl-dev:amd64
		libtirpc-dev:amd64 libssl-dev:amd64 zlib1g-dev:amd64 libffi-dev:amd64 libexpat1-dev:amd64
		libsqlite3-dev:amd64 libreadline-dev:amd64 libncurses-dev:amd64 libbz2-dev:amd64 liblzma-dev:amd64
		make manpages-dev pkgconf:amd64 pkgconf-bin libpkgconf3:amd64`)},
	{"python", strings.Fields(`python3.11 python3.11-minimal libpython3.11-minimal:amd64
		libpython3.11-stdlib:amd64 libpython3.11:amd64 python3 python3-minimal libpython3-stdlib:amd64
		libexpat1:amd64 libsqlite3-0:amd64 libreadline8:amd64 readline-common media-types`)},
	{"modules", strings.Fields(`python3-pip python3-setuptools python3-pkg-resources python3-wheel
		python3-distutils python3-lib2to3 python3-pygments python3-yaml libyaml-0-2:amd64
		python3-cryptography python3-six python3-toml python3-distro python3-pyparsing`)},
}

// debianWhiteout is deleted by the top layer, as python images do so that
// pip may install system-wide: one whiteout, the way real images have them.
const debianWhiteout = "usr/lib/python3.11/EXTERNALLY-MANAGED"

// dpkgInfoDir holds <package>.list, the files dpkg installed for a package.
const dpkgInfoDir = "/var/lib/dpkg/info"

// debianFile is one file of the image as found on this machine.
type debianFile struct {
	rel  string // path inside the image, without a leading "/"
	host string // path on this machine
}

// planDebian reads the dpkg file lists of the layers' packages and assigns
// each file under /usr (except translations, which slim images drop too) to
// the first layer that lists it. Paths are resolved through this machine's
// directory symlinks (/bin → /usr/bin on a merged-/usr system), so a file
// listed under both names is one file. Missing packages are returned, not
// fatal: the image is then smaller but still the same on every run.
func planDebian(infoDir string) (layers [][]debianFile, missing []string, err error) {
	seen := map[string]bool{}
	canon := map[string]string{}
	for _, l := range debianLayers {
		var files []debianFile
		for _, pkg := range l.packages {
			names, err := readDpkgList(filepath.Join(infoDir, pkg+".list"))
			if errors.Is(err, fs.ErrNotExist) {
				missing = append(missing, pkg)
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			for _, n := range names {
				p, err := canonicalPath(n, canon)
				if err != nil || seen[p] || !strings.HasPrefix(p, "/usr/") || strings.HasPrefix(p, "/usr/share/locale/") {
					continue
				}
				fi, err := os.Lstat(p)
				if err != nil || !(fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0) {
					continue // directories follow from their files
				}
				seen[p] = true
				files = append(files, debianFile{rel: p[1:], host: p})
			}
		}
		slices.SortFunc(files, func(a, b debianFile) int { return strings.Compare(a.rel, b.rel) })
		layers = append(layers, files)
	}
	return layers, missing, nil
}

func readDpkgList(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "/") {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}

// canonicalPath resolves the directory of p through symlinks (memoized in
// cache), keeping its last component as it is.
func canonicalPath(p string, cache map[string]string) (string, error) {
	dir, base := path.Split(p)
	real, ok := cache[dir]
	if !ok {
		var err error
		if real, err = filepath.EvalSymlinks(dir); err != nil {
			return "", err
		}
		cache[dir] = real
	}
	return path.Join(real, base), nil
}

// debianEntries turns one layer's files into tar entries: parent
// directories first (fixed mode 0755 and time, since directory times on the
// host move whenever any package is installed), then files and symlinks with
// the host's modes, owners and mtimes. Regular files that share an inode
// within the layer become hard links to the first name, as in a tar of the
// host. The top-level links of a merged-/usr system go into layer 0.
func debianEntries(n int, files []debianFile) (entries []testkit.Entry, content int64, err error) {
	dirs := map[string]bool{}
	var addDirs func(d string)
	addDirs = func(d string) {
		if d == "." || d == "" || dirs[d] {
			return
		}
		addDirs(path.Dir(d))
		dirs[d] = true
		entries = append(entries, testkit.Dir(d+"/"))
	}
	if n == 0 {
		for _, d := range []string{"etc", "home", "root", "run", "var", "var/tmp", "usr"} {
			addDirs(d)
		}
		entries = append(entries, testkit.Entry{Name: "tmp/", Type: tar.TypeDir, Mode: 0o1777})
		for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
			if target, err := os.Readlink("/" + l); err == nil {
				entries = append(entries, testkit.Symlink(l, target))
			}
		}
	}
	type inode struct{ dev, ino uint64 }
	links := map[inode]string{}
	for _, f := range files {
		fi, err := os.Lstat(f.host)
		if err != nil {
			return nil, 0, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil, 0, fmt.Errorf("%s: no stat data", f.host)
		}
		addDirs(path.Dir(f.rel))
		e := testkit.Entry{
			Name:    f.rel,
			Mode:    int64(fi.Mode().Perm()),
			UID:     int(st.Uid),
			GID:     int(st.Gid),
			ModTime: fi.ModTime(),
		}
		if fi.Mode()&fs.ModeSetuid != 0 {
			e.Mode |= 0o4000
		}
		if fi.Mode()&fs.ModeSetgid != 0 {
			e.Mode |= 0o2000
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = tar.TypeSymlink
			if e.Linkname, err = os.Readlink(f.host); err != nil {
				return nil, 0, err
			}
		case st.Nlink > 1 && links[inode{st.Dev, st.Ino}] != "":
			e = testkit.Hardlink(f.rel, links[inode{st.Dev, st.Ino}])
		default:
			if e.Content, err = os.ReadFile(f.host); err != nil {
				return nil, 0, err
			}
			content += int64(len(e.Content))
			if st.Nlink > 1 {
				links[inode{st.Dev, st.Ino}] = f.rel
			}
		}
		entries = append(entries, e)
	}
	return entries, content, nil
}

// buildDebian builds the "debian" image from this machine's package files.
func buildDebian() (*builtImage, []string, error) {
	plan, missing, err := planDebian(dpkgInfoDir)
	if err != nil {
		return nil, nil, err
	}
	out := &builtImage{}
	var layers []v1.Layer
	below := map[string]bool{}
	for n, files := range plan {
		entries, content, err := debianEntries(n, files)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d (%s): %w", n, debianLayers[n].name, err)
		}
		if n == len(plan)-1 && below[debianWhiteout] {
			entries = append(entries, testkit.Whiteout(debianWhiteout))
		}
		for _, f := range files {
			below[f.rel] = true
		}
		l, err := testkit.NewLayer(entries, testkit.Gzip)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %d (%s): %w", n, debianLayers[n].name, err)
		}
		if err := out.addLayer(l, content, len(files), len(entries)); err != nil {
			return nil, nil, err
		}
		layers = append(layers, l)
	}
	if err := out.finish(testkit.ImageConfig{Cmd: []string{"/usr/bin/python3"}}, layers); err != nil {
		return nil, nil, err
	}
	return out, missing, nil
}
