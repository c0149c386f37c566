// Package testnet hands each test a bridge name and subnets that no other
// test process on the host is using at the same time.
//
// Tests that wire pods into a CNI bridge used to hard-code one bridge and one
// subnet per package, so two `go test` runs of the same package (two
// engineers, or CI next to a developer) fought over the same bridge and the
// same host routes. A lease is a slot number guarded by an flock held until
// the process exits: the kernel drops the lock of a crashed test, so a slot is
// never lost.
package testnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Slots is how many leases can be held on a host at once; each is a /24 of
// 10.150.0.0/16 and a /64 of fd0a:150::/48.
const Slots = 200

// LockDir holds one lock file per slot.
var LockDir = "/run/lock/cradle-testnet"

// Net is one leased slot.
type Net struct {
	Slot   int
	Bridge string       // at most 15 bytes, as Linux requires
	V4     netip.Prefix // 10.150.<slot>.0/24
	V6     netip.Prefix // fd0a:150:0:<slot>::/64
}

var (
	mu   sync.Mutex
	held []*os.File // never closed: the locks live as long as the process
)

// Lease returns a slot no other process holds. It removes a bridge left
// behind by a crashed holder of the same slot, so the caller starts clean.
func Lease() (Net, error) {
	mu.Lock()
	defer mu.Unlock()
	if err := os.MkdirAll(LockDir, 0o755); err != nil {
		return Net{}, fmt.Errorf("testnet: %w", err)
	}
	for slot := 0; slot < Slots; slot++ {
		f, err := os.OpenFile(filepath.Join(LockDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return Net{}, fmt.Errorf("testnet: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue // held by another process, or by this one through another fd
			}
			return Net{}, fmt.Errorf("testnet: lock slot %d: %w", slot, err)
		}
		held = append(held, f)
		n := slotNet(slot)
		if _, err := os.Stat(filepath.Join("/sys/class/net", n.Bridge)); err == nil {
			if out, err := exec.Command("ip", "link", "del", n.Bridge).CombinedOutput(); err != nil {
				return Net{}, fmt.Errorf("testnet: remove stale bridge %s: %v: %s", n.Bridge, err, out)
			}
		}
		return n, nil
	}
	return Net{}, fmt.Errorf("testnet: all %d slots in %s are held", Slots, LockDir)
}

// MustLease is Lease for package-level variables of test files.
func MustLease() Net {
	n, err := Lease()
	if err != nil {
		panic(err)
	}
	return n
}

func slotNet(slot int) Net {
	return Net{
		Slot:   slot,
		Bridge: fmt.Sprintf("crtest%d", slot),
		V4:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 150, byte(slot), 0}), 24),
		V6:     netip.MustParsePrefix(fmt.Sprintf("fd0a:150:0:%x::/64", slot)),
	}
}

// Gateway4 is the address the CNI bridge plugin gives the bridge (isGateway).
func (n Net) Gateway4() netip.Addr { return n.V4.Addr().Next() }
