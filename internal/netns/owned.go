package netns

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// PinFrom pins namespaces that already exist, those of the process pid,
// under dir exactly as Pin pins new ones (same files, same peer group, same
// Unpin). It is for a pod with its own user namespace: its network, IPC and
// UTS namespaces must be created inside that user namespace so that they
// belong to it, which only a child process can do (internal/userns.Spawn);
// PinFrom then keeps them after that child is gone. The network namespace
// gets its loopback up, as with Pin.
//
// The caller must keep pid alive and unchanged until PinFrom returns.
func PinFrom(dir string, pid int, kinds ...Kind) (Pinned, error) {
	if err := checkDir(dir); err != nil {
		return Pinned{}, err
	}
	if pid <= 0 {
		return Pinned{}, errdefs.InvalidArgument("pin %s: pid %d", dir, pid)
	}
	if len(kinds) == 0 {
		return Pinned{}, errdefs.InvalidArgument("pin %s: no namespace kinds given", dir)
	}
	for i, k := range kinds {
		if _, ok := k.cloneFlag(); !ok {
			return Pinned{}, errdefs.InvalidArgument("pin %s: unknown namespace kind %q", dir, k)
		}
		if slices.Contains(kinds[:i], k) {
			return Pinned{}, errdefs.InvalidArgument("pin %s: namespace kind %q given twice", dir, k)
		}
	}
	for _, k := range allKinds {
		if Exists(PathOf(dir, k)) {
			return Pinned{}, errdefs.AlreadyExists("pin %s: %s namespace already pinned there", dir, k)
		}
	}
	if err := pinFrom(dir, pid, kinds); err != nil {
		if uerr := Unpin(dir); uerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", uerr))
		}
		return Pinned{}, err
	}
	return Pinned{dir: dir, kinds: slices.Clone(kinds)}, nil
}

func pinFrom(dir string, pid int, kinds []Kind) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sysErr(fmt.Errorf("pin: %w", err))
	}
	if err := ownPeerGroup(dir); err != nil {
		return err
	}
	src := "/proc/" + strconv.Itoa(pid) + "/ns/"
	for _, k := range kinds {
		f, err := os.OpenFile(PathOf(dir, k), os.O_RDONLY|os.O_CREATE, 0o400)
		if err != nil {
			return sysErr(fmt.Errorf("pin: create %s file: %w", k, err))
		}
		f.Close()
		if err := unix.Mount(src+string(k), PathOf(dir, k), "", unix.MS_BIND, ""); err != nil {
			return sysErr(fmt.Errorf("pin %s: bind %s namespace of pid %d: %w", dir, k, pid, err))
		}
	}
	if slices.Contains(kinds, Net) {
		if err := Do(PathOf(dir, Net), loopbackUp); err != nil {
			return sysErr(fmt.Errorf("pin %s: bring up lo: %w", dir, err))
		}
	}
	return nil
}
