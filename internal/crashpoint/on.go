//go:build crashpoints

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this binary was built with crash points.
const Enabled = true

var (
	armed string
	nth   int64 = 1
	hits  atomic.Int64
)

func init() {
	v := os.Getenv(EnvVar)
	if v == "" {
		return
	}
	armed = v
	if name, n, ok := strings.Cut(v, "#"); ok {
		armed = name
		if k, err := strconv.ParseInt(n, 10, 64); err == nil && k > 0 {
			nth = k
		}
	}
}

// Hit kills the process with SIGKILL on the armed hit of the armed name.
func Hit(name string) {
	if armed == "" || name != armed || hits.Add(1) != nth {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint: %s reached: SIGKILL\n", name)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the signal is on its way
}
