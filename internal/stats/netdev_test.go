package stats

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cradle-runtime/cradle/internal/netns"
)

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0: 1234567    890    1    2    0     0          0         0   765432     321    3    4    0     0       0          0
 net1:       5       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0
`

func TestParseNetDev(t *testing.T) {
	ifs, err := parseNetDev(netDev)
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{
		{Name: "eth0", RxBytes: 1234567, RxPackets: 890, RxErrors: 1, RxDrops: 2, TxBytes: 765432, TxPackets: 321, TxErrors: 3, TxDrops: 4},
		{Name: "net1", RxBytes: 5, RxPackets: 1, TxBytes: 6, TxPackets: 1},
	}
	if len(ifs) != 2 || ifs[0] != want[0] || ifs[1] != want[1] {
		t.Fatalf("got %+v\nwant %+v", ifs, want)
	}
	for _, bad := range []string{
		"h1\nh2\n  eth0 1 2 3\n",
		"h1\nh2\n  eth0: 1 2 3\n",
		"h1\nh2\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n",
	} {
		if _, err := parseNetDev(bad); err == nil {
			t.Errorf("parseNetDev accepted %q", bad)
		}
	}
}

// TestReadNetworkInPinnedNamespace reads a namespace pinned as cradle pins
// pods' (no process inside): only its own interfaces show, not the host's.
func TestReadNetworkInPinnedNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter missing")
	}
	dir := filepath.Join(t.TempDir(), "ns")
	p, err := netns.Pin(dir, netns.Net)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Unpin(dir) })
	path := p.Path(netns.Net)

	ifs, err := ReadNetwork(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 0 {
		t.Fatalf("fresh namespace (lo only) shows %+v", ifs)
	}
	if out, err := exec.Command("nsenter", "--net="+path, "ip", "link", "add", "vt0", "type", "veth", "peer", "name", "vt1").CombinedOutput(); err != nil {
		t.Fatalf("adding a veth pair: %v %s", err, out)
	}
	if ifs, err = ReadNetwork(path); err != nil || len(ifs) != 2 || ifs[0].Name != "vt0" || ifs[1].Name != "vt1" {
		t.Fatalf("after adding vt0/vt1: %+v, %v", ifs, err)
	}
	if _, err := ReadNetwork(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("reading a missing namespace succeeded")
	}
}
