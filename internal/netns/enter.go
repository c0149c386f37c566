package netns

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Do runs fn with its OS thread inside the network namespace at path and
// returns fn's error.
//
// fn runs on a goroutine of its own, locked to a thread other than the main
// thread, while the caller waits; goroutines fn starts run elsewhere, in the host's namespace. Sockets
// fn opens stay in the namespace after Do returns. Afterwards the thread
// returns to its original namespace; if that fails the thread is never
// reused: its goroutine exits still locked, which makes the Go runtime end
// the thread. A panic in fn is re-raised in the caller.
func Do(path string, fn func() error) error {
	return do(path, Net, fn)
}

// SetHostname sets the hostname inside the UTS namespace at utsPath.
func SetHostname(utsPath, name string) error {
	// HOST_NAME_MAX is 64; the kernel counts bytes.
	if name == "" || len(name) > 64 || strings.ContainsRune(name, 0) {
		return errdefs.InvalidArgument("hostname %q must be 1 to 64 bytes without NUL", name)
	}
	return do(utsPath, UTS, func() error {
		if err := unix.Sethostname([]byte(name)); err != nil {
			return sysErr(fmt.Errorf("set hostname %q in %s: %w", name, utsPath, err))
		}
		return nil
	})
}

// Sysctl writes value to the network sysctl key inside the network namespace
// at netnsPath. key uses dots (net.ipv4.ip_forward) or, as Kubernetes allows,
// slashes (net/ipv4/conf/eth0.100/forwarding); in the dotted form a slash
// stands for a literal dot, so both of those name the same file.
func Sysctl(netnsPath, key, value string) error {
	file, err := sysctlFile(key)
	if err != nil {
		return err
	}
	if strings.ContainsAny(value, "\n\x00") {
		return errdefs.InvalidArgument("sysctl %s: value %q has a newline or NUL", key, value)
	}
	return do(netnsPath, Net, func() error {
		// /proc/sys/net shows the network namespace of the task that looks
		// it up, which here is this thread.
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_TRUNC, 0)
		if errors.Is(err, os.ErrNotExist) {
			return errdefs.NotFound("sysctl %s does not exist in this kernel", key)
		}
		if err != nil {
			return sysErr(fmt.Errorf("sysctl %s: %w", key, err))
		}
		_, werr := f.WriteString(value)
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			if errors.Is(err, unix.EINVAL) {
				return errdefs.InvalidArgument("sysctl %s: value %q rejected by the kernel", key, value)
			}
			return sysErr(fmt.Errorf("sysctl %s=%q: %w", key, value, err))
		}
		return nil
	})
}

// sysctlFile maps a network sysctl name to its /proc/sys path.
func sysctlFile(key string) (string, error) {
	parts := splitSysctl(key)
	if len(parts) < 2 || parts[0] != "net" {
		return "", errdefs.InvalidArgument("sysctl %q: only net.* sysctls are set in a network namespace", key)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", errdefs.InvalidArgument("sysctl %q: empty or relative name component", key)
		}
	}
	return "/proc/sys/" + strings.Join(parts, "/"), nil
}

func splitSysctl(key string) []string {
	slash, dot := strings.IndexByte(key, '/'), strings.IndexByte(key, '.')
	if slash >= 0 && (dot < 0 || slash < dot) {
		return strings.Split(key, "/")
	}
	parts := strings.Split(key, ".")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(p, "/", ".")
	}
	return parts
}

// setns is unix.Setns; tests replace it to make the return trip fail.
var setns = unix.Setns

// outcome carries fn's result, or its panic, back to the caller of do.
type outcome struct {
	err      error
	panicked bool
	panicVal any
}

func do(path string, kind Kind, fn func() error) error {
	nstype, _ := kind.cloneFlag()
	// O_NONBLOCK: a FIFO at path must fail setns, not hang the open.
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return errdefs.NotFound("%s namespace %s does not exist", kind, path)
	}
	if err != nil {
		return sysErr(fmt.Errorf("open %s namespace %s: %w", kind, path, err))
	}
	defer unix.Close(target)

	// Stays as is only if fn ends its goroutine (runtime.Goexit, t.FailNow):
	// runIn's deferred return trip runs, but its result never arrives.
	o := outcome{err: fmt.Errorf("function run in %s namespace %s exited its goroutine", kind, path)}
	onWorkerThread(func() bool {
		var clean bool
		o, clean = runIn(target, path, kind, nstype, fn)
		return clean
	})
	if o.panicked {
		panic(o.panicVal)
	}
	return o.err
}

// runIn enters the namespace, runs fn and returns. It reports the thread
// clean only when it is back in its own namespace.
func runIn(target int, path string, kind Kind, nstype int, fn func() error) (o outcome, clean bool) {
	orig, err := unix.Open("/proc/thread-self/ns/"+string(kind), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return outcome{err: sysErr(fmt.Errorf("open own %s namespace: %w", kind, err))}, true
	}
	defer unix.Close(orig)

	if err := setns(target, nstype); err != nil {
		// A failed setns changes nothing: the thread is clean.
		if errors.Is(err, unix.EINVAL) {
			return outcome{err: errdefs.InvalidArgument("%s is not a %s namespace", path, kind)}, true
		}
		return outcome{err: sysErr(fmt.Errorf("enter %s namespace %s: %w", kind, path, err))}, true
	}
	defer func() {
		if r := recover(); r != nil {
			o = outcome{panicked: true, panicVal: r}
		}
		if err := setns(orig, nstype); err != nil {
			o.err = errors.Join(o.err, fmt.Errorf("return from %s namespace %s: %w (thread discarded)", kind, path, err))
			return
		}
		clean = true
	}()
	return outcome{err: fn()}, false
}
