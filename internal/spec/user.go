package spec

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// runc refuses IDs above MaxInt32, so such requests fail here, clearly.
const maxID = math.MaxInt32

// resolveUser picks the process identity. The security context wins over
// the image's USER entirely; names are looked up in the container's own
// /etc/passwd and /etc/group. The primary gid is always in AdditionalGids so
// the list is never empty: an empty list would leave the runtime's own
// supplementary groups on the process (CVE-2023-25173).
func resolveUser(in *Input, sc *runtimeapi.LinuxContainerSecurityContext) (specs.User, error) {
	policy := sc.GetSupplementalGroupsPolicy()
	if policy != runtimeapi.SupplementalGroupsPolicy_Merge && policy != runtimeapi.SupplementalGroupsPolicy_Strict {
		return specs.User{}, errdefs.InvalidArgument("not implemented in this cradle release: SupplementalGroupsPolicy=%d", policy)
	}
	userPart, groupPart, err := userSpec(sc, in.Image.User)
	if err != nil {
		return specs.User{}, err
	}
	db := &accounts{in: in}
	defer db.close()

	var u specs.User
	var entry *passwdEntry
	id, numeric, err := parseID(userPart, "uid")
	// run_as_username must name an entry of /etc/passwd, even "1000".
	numeric = numeric && sc.GetRunAsUsername() == ""
	if err != nil && numeric {
		return u, err
	}
	if numeric {
		u.UID = id
		if entry, err = db.userBy(func(e passwdEntry) bool { return e.uid == int64(id) }); err != nil {
			return u, err
		}
	} else {
		if entry, err = db.userBy(func(e passwdEntry) bool { return e.name == userPart }); err != nil {
			return u, err
		}
		if entry == nil {
			return u, errdefs.InvalidArgument("user %q not found in the image's /etc/passwd", userPart)
		}
		if u.UID, err = checkID(entry.uid, "uid of user "+userPart); err != nil {
			return u, err
		}
	}

	switch {
	case sc.GetRunAsGroup() != nil:
		if u.GID, err = checkID(sc.GetRunAsGroup().GetValue(), "run_as_group"); err != nil {
			return u, err
		}
	case groupPart != "":
		id, numeric, err := parseID(groupPart, "gid")
		if err != nil {
			return u, err
		}
		if !numeric {
			groups, err := db.groupsBy(func(g groupEntry) bool { return g.name == groupPart })
			if err != nil {
				return u, err
			}
			if len(groups) == 0 {
				return u, errdefs.InvalidArgument("group %q not found in the image's /etc/group", groupPart)
			}
			if id, err = checkID(groups[0].gid, "gid of group "+groupPart); err != nil {
				return u, err
			}
		}
		u.GID = id
	case entry != nil:
		if u.GID, err = checkID(entry.gid, "primary gid of user "+entry.name); err != nil {
			return u, err
		}
	}

	gids := []uint32{u.GID}
	if policy == runtimeapi.SupplementalGroupsPolicy_Merge && entry != nil {
		groups, err := db.groupsBy(func(g groupEntry) bool { return slices.Contains(g.members, entry.name) })
		if err != nil {
			return u, err
		}
		for _, g := range groups {
			if g.gid <= maxID {
				gids = append(gids, uint32(g.gid))
			}
		}
	}
	for _, g := range sc.GetSupplementalGroups() {
		id, err := checkID(g, "supplemental group")
		if err != nil {
			return u, err
		}
		gids = append(gids, id)
	}
	slices.Sort(gids)
	u.AdditionalGids = slices.Compact(gids)
	return u, nil
}

// userSpec returns the user and group parts to resolve.
func userSpec(sc *runtimeapi.LinuxContainerSecurityContext, imageUser string) (string, string, error) {
	name, uid := sc.GetRunAsUsername(), sc.GetRunAsUser()
	switch {
	case name != "" && uid != nil:
		return "", "", errdefs.InvalidArgument("run_as_user and run_as_username are both set")
	case name != "":
		if strings.Contains(name, ":") {
			return "", "", errdefs.InvalidArgument("run_as_username %q contains ':'", name)
		}
		return name, "", nil
	case uid != nil:
		if _, err := checkID(uid.GetValue(), "run_as_user"); err != nil {
			return "", "", err
		}
		return strconv.FormatInt(uid.GetValue(), 10), "", nil
	case sc.GetRunAsGroup() != nil:
		return "", "", errdefs.InvalidArgument("run_as_group is set without run_as_user or run_as_username")
	case imageUser == "":
		return "0", "", nil
	}
	u, g, hasGroup := strings.Cut(imageUser, ":")
	if u == "" || hasGroup && g == "" || strings.Contains(g, ":") {
		return "", "", errdefs.InvalidArgument("invalid image USER %q: want user, uid, user:group or uid:gid", imageUser)
	}
	return u, g, nil
}

// parseID reports whether s is numeric and, if so, its value in range.
func parseID(s, what string) (uint32, bool, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, true, errdefs.InvalidArgument("%s %q is out of range", what, s)
	}
	id, err := checkID(v, what)
	return id, true, err
}

func checkID(v int64, what string) (uint32, error) {
	if v < 0 || v > maxID {
		return 0, errdefs.InvalidArgument("%s %d is outside [0, %d]", what, v, maxID)
	}
	return uint32(v), nil
}

// accounts reads the container's passwd and group files on demand.
type accounts struct {
	in   *Input
	fsys fs.FS
	root *os.Root
}

func (a *accounts) close() {
	if a.root != nil {
		a.root.Close()
	}
}

func (a *accounts) open() (fs.FS, error) {
	if a.fsys != nil {
		return a.fsys, nil
	}
	if a.in.RootFS != nil {
		a.fsys = a.in.RootFS
		return a.fsys, nil
	}
	root, err := os.OpenRoot(a.in.RootfsPath)
	if err != nil {
		return nil, errdefs.FailedPrecondition("open container rootfs %s: %v", a.in.RootfsPath, err)
	}
	a.root, a.fsys = root, root.FS()
	return a.fsys, nil
}

// Bound what a hostile image can make the daemon read.
const maxAccountsFile = 16 << 20

func (a *accounts) read(name string, parse func(io.Reader) error) error {
	fsys, err := a.open()
	if err != nil {
		return err
	}
	f, err := openInRoot(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return errdefs.InvalidArgument("read %s in the image: %v", name, err)
	}
	defer f.Close()
	if err := parse(io.LimitReader(f, maxAccountsFile)); err != nil {
		return errdefs.InvalidArgument("parse %s in the image: %v", name, err)
	}
	return nil
}

func (a *accounts) userBy(match func(passwdEntry) bool) (*passwdEntry, error) {
	var found *passwdEntry
	err := a.read("/etc/passwd", func(r io.Reader) error {
		return scanAccounts(r, 4, func(f []string) bool {
			e := passwdEntry{name: f[0]}
			var ok bool
			if e.uid, ok = accountID(f[2]); !ok {
				return false
			}
			if e.gid, ok = accountID(f[3]); !ok {
				return false
			}
			if match(e) {
				found = &e
				return true
			}
			return false
		})
	})
	return found, err
}

func (a *accounts) groupsBy(match func(groupEntry) bool) ([]groupEntry, error) {
	var found []groupEntry
	err := a.read("/etc/group", func(r io.Reader) error {
		return scanAccounts(r, 3, func(f []string) bool {
			e := groupEntry{name: f[0]}
			var ok bool
			if e.gid, ok = accountID(f[2]); !ok {
				return false
			}
			if len(f) > 3 {
				for m := range strings.SplitSeq(f[3], ",") {
					if m = strings.TrimSpace(m); m != "" {
						e.members = append(e.members, m)
					}
				}
			}
			if match(e) {
				found = append(found, e)
			}
			return false
		})
	})
	return found, err
}

type passwdEntry struct {
	name     string
	uid, gid int64
}

type groupEntry struct {
	name    string
	gid     int64
	members []string
}

// scanAccounts calls fn with the colon-separated fields of each entry line
// until fn returns true. Like glibc it skips what it cannot read: comments,
// NIS "+"/"-" lines, short lines; unlike a lenient parser it never turns a
// bad number into 0, which would make a broken entry root.
func scanAccounts(r io.Reader, minFields int, fn func([]string) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < minFields || f[0] == "" {
			continue
		}
		if fn(f) {
			return nil
		}
	}
	return sc.Err()
}

func accountID(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0
}

// openInRoot opens name inside fsys, resolving symlinks as if fsys were the
// root directory: absolute targets restart at its top and ".." stops there.
// Images often link /etc/passwd elsewhere in themselves; none may reach the
// host.
func openInRoot(fsys fs.FS, name string) (fs.File, error) {
	resolved, err := resolveInRoot(fsys, name)
	if err != nil {
		return nil, err
	}
	return fsys.Open(fsName(resolved))
}

func fsName(p string) string {
	if p == "/" {
		return "."
	}
	return strings.TrimPrefix(p, "/")
}

const maxSymlinks = 40

func resolveInRoot(fsys fs.FS, name string) (string, error) {
	rl, ok := fsys.(fs.ReadLinkFS)
	if !ok {
		return path.Clean("/" + name), nil
	}
	done, rest, hops := "/", splitPath(name), 0
	for len(rest) > 0 {
		part := rest[0]
		rest = rest[1:]
		if part == ".." {
			done = path.Dir(done) // "/" stays "/"
			continue
		}
		next := path.Join(done, part)
		fi, err := rl.Lstat(fsName(next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if hops++; hops > maxSymlinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", name)
		}
		target, err := rl.ReadLink(fsName(next))
		if err != nil {
			return "", err
		}
		// A relative target continues from the link's directory (done).
		if path.IsAbs(target) {
			done = "/"
		}
		rest = append(splitPath(target), rest...)
	}
	return done, nil
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return parts
}
