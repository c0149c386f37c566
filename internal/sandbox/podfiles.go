package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (m *Manager) podDir(id string) string { return filepath.Join(m.podsDir, id) }
func (m *Manager) nsDir(id string) string  { return filepath.Join(m.podDir(id), "ns") }
func (m *Manager) nsPath(id, kind string) string {
	return filepath.Join(m.nsDir(id), kind)
}

// resolvConf renders dns_config; nil means the pod gets the host's file.
func resolvConf(d *runtimeapi.DNSConfig) []byte {
	if len(d.GetServers()) == 0 && len(d.GetSearches()) == 0 && len(d.GetOptions()) == 0 {
		return nil
	}
	var b strings.Builder
	if s := d.GetSearches(); len(s) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(s, " "))
	}
	for _, s := range d.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if o := d.GetOptions(); len(o) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(o, " "))
	}
	return []byte(b.String())
}

// hostsFile is the /etc/hosts of a pod with its own network: localhost and
// the pod's own name on its addresses. (Kubelet usually mounts its own
// hosts file over it, but not every client is kubelet.)
func hostsFile(hostname string, ips []netip.Addr) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String())
}

// copyFile copies a small host file (resolv.conf, hosts) into the pod.
func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read host file: %w", err)
	}
	return writeFileAtomic(dst, b, 0o644, false)
}

// mountShm mounts the pod's /dev/shm tmpfs; size is in bytes.
func mountShm(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if mnt, err := isMountPoint(dir); err != nil || mnt {
		if err == nil {
			err = errors.New("already mounted")
		}
		return fmt.Errorf("pod shm %s: %w", dir, err)
	}
	opts := fmt.Sprintf("mode=1777,size=%d", size)
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount pod shm %s: %w", dir, err)
	}
	return nil
}

// unmountAll detaches every mount stacked on p; a p that is not mounted or
// does not exist is fine. The bound only stops a runaway loop.
func unmountAll(p string) error {
	for range 64 {
		err := unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 64 unmounts", p)
}

// isMountPoint compares mount IDs with the parent's, which also sees a
// tmpfs mounted inside the (tmpfs) state dir.
func isMountPoint(dir string) (bool, error) {
	id := func(p string) (uint64, error) {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st); err != nil {
			return 0, fmt.Errorf("statx %s: %w", p, err)
		}
		if st.Mask&unix.STATX_MNT_ID == 0 {
			return 0, fmt.Errorf("statx %s: no mount ID (Linux 5.8 or newer needed)", p)
		}
		return st.Mnt_id, nil
	}
	self, err := id(dir)
	if err != nil {
		return false, err
	}
	parent, err := id(filepath.Dir(dir))
	return err == nil && self != parent, err
}
