package stats

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cradle-runtime/cradle/internal/netns"
)

// Interface is one network interface's cumulative counters.
type Interface struct {
	Name                                  string
	RxBytes, RxPackets, RxErrors, RxDrops uint64
	TxBytes, TxPackets, TxErrors, TxDrops uint64
}

// ReadNetwork reads the interfaces of the network namespace pinned at
// path, loopback excluded. It enters the namespace on a throw-away thread
// (cradle pins namespaces without a process whose /proc could be read), so
// it belongs in the background collector, not on an RPC path.
func ReadNetwork(path string) ([]Interface, error) {
	var data []byte
	err := netns.Do(path, func() error {
		var err error
		// thread-self, not self: only this thread is in the pod's namespace.
		data, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, err
	}
	return parseNetDev(string(data))
}

// parseNetDev parses /proc/net/dev: two header lines, then
// "name: rx bytes packets errs drop fifo frame compressed multicast tx bytes packets errs drop ...".
func parseNetDev(s string) ([]Interface, error) {
	var out []Interface
	n := 0
	for line := range strings.Lines(s) {
		if n++; n <= 2 {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("net/dev: malformed line %q", strings.TrimSpace(line))
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("net/dev: %s: %d fields, want 16", name, len(f))
		}
		if name == "lo" {
			continue
		}
		v := make([]uint64, 16)
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("net/dev: %s: %w", name, err)
			}
		}
		out = append(out, Interface{
			Name:    name,
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDrops: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDrops: v[11],
		})
	}
	slices.SortFunc(out, func(a, b Interface) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
