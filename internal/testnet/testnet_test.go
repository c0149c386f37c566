package testnet

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestLeasesAreDistinctWithinAndAcrossProcesses(t *testing.T) {
	LockDir = t.TempDir()
	a, err := Lease()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Lease()
	if err != nil {
		t.Fatal(err)
	}
	if a.Slot == b.Slot || a.Bridge == b.Bridge || a.V4 == b.V4 || a.V6 == b.V6 {
		t.Fatalf("two leases overlap: %+v %+v", a, b)
	}
	if len(a.Bridge) > 15 || len(slotNet(Slots-1).Bridge) > 15 {
		t.Fatalf("bridge name too long for Linux: %q", slotNet(Slots-1).Bridge)
	}

	// Another process must skip both slots while this one lives.
	if os.Getenv("TESTNET_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestChildLease$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTNET_CHILD=1", "TESTNET_DIR="+LockDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "slot=2 ") {
			t.Fatalf("child did not get the first free slot (2):\n%s", out)
		}
	}
}

func TestChildLease(t *testing.T) {
	if os.Getenv("TESTNET_CHILD") == "" {
		t.Skip("run by TestLeasesAreDistinctWithinAndAcrossProcesses")
	}
	LockDir = os.Getenv("TESTNET_DIR")
	n, err := Lease()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("slot=%d bridge=%s", n.Slot, n.Bridge)
}

func TestSlotNetworksAreValid(t *testing.T) {
	for _, slot := range []int{0, 1, 15, 199} {
		n := slotNet(slot)
		if !n.V4.IsValid() || !n.V6.IsValid() || n.V4.Bits() != 24 || n.V6.Bits() != 64 {
			t.Fatalf("slot %d: %+v", slot, n)
		}
	}
	if slotNet(10).V4.String() != "10.150.10.0/24" || slotNet(10).V6.String() != "fd0a:150:0:a::/64" {
		t.Fatalf("slot 10: %+v", slotNet(10))
	}
}
