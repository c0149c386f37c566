package container

import (
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// signalAliases are CRI signal names the signal table knows by another name.
var signalAliases = map[string]string{"SIGCLD": "SIGCHLD", "SIGIOT": "SIGABRT", "SIGPOLL": "SIGIO"}

// Real-time signals as C programs see them: glibc keeps the kernel's first
// two for itself, so SIGRTMIN is 34.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// realtimeSignal parses the CRI names SIGRTMIN, SIGRTMINPLUSn, SIGRTMAX and
// SIGRTMAXMINUSn.
func realtimeSignal(name string) (syscall.Signal, bool) {
	base, off, sign := 0, "", 1
	switch {
	case strings.HasPrefix(name, "SIGRTMINPLUS"):
		base, off = sigRTMin, strings.TrimPrefix(name, "SIGRTMINPLUS")
	case strings.HasPrefix(name, "SIGRTMAXMINUS"):
		base, off, sign = sigRTMax, strings.TrimPrefix(name, "SIGRTMAXMINUS"), -1
	case name == "SIGRTMIN":
		return sigRTMin, true
	case name == "SIGRTMAX":
		return sigRTMax, true
	default:
		return 0, false
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 {
		return 0, false
	}
	s := base + sign*n
	if s < sigRTMin || s > sigRTMax {
		return 0, false
	}
	return syscall.Signal(s), true
}

// stopSignal picks the CRI config's signal, else the image's, else SIGTERM.
func stopSignal(cri runtimeapi.Signal, image string) (syscall.Signal, error) {
	if cri != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		name := strings.TrimPrefix(cri.String(), "SIGNAL_")
		if alias, ok := signalAliases[name]; ok {
			name = alias
		}
		if s := unix.SignalNum(name); s != 0 {
			return s, nil
		}
		if s, ok := realtimeSignal(name); ok {
			return s, nil
		}
		return 0, errdefs.InvalidArgument("unknown stop signal %s", cri)
	}
	if image == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(image); err == nil && n > 0 && n <= 64 {
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(image)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if s := unix.SignalNum(name); s != 0 {
		return s, nil
	}
	if s, ok := realtimeSignal(strings.NewReplacer("+", "PLUS", "-", "MINUS").Replace(name)); ok {
		return s, nil
	}
	// An image with a bad STOPSIGNAL must still be stoppable.
	return unix.SIGTERM, nil
}

// reportedStopSignal is the signal StopContainer sends, in CRI form, for
// ContainerStatus.stop_signal: kubelet shows what will really be sent, also
// when it comes from the image's STOPSIGNAL or the SIGTERM default.
func reportedStopSignal(cri runtimeapi.Signal, image string) runtimeapi.Signal {
	sig, err := stopSignal(cri, image)
	if err != nil {
		// Create refused such configs; an old record keeps its own value.
		return cri
	}
	return criSignal(sig)
}

// criSignal names a signal the CRI way: SIGTERM → Signal_SIGTERM, the
// real-time ones as SIGRTMIN, SIGRTMINPLUSn, SIGRTMAXMINUSn, SIGRTMAX.
func criSignal(sig syscall.Signal) runtimeapi.Signal {
	var name string
	switch {
	case sig == sigRTMin:
		name = "SIGRTMIN"
	case sig == sigRTMax:
		name = "SIGRTMAX"
	case sig > sigRTMin && sig <= (sigRTMin+sigRTMax)/2:
		name = "SIGRTMINPLUS" + strconv.Itoa(int(sig-sigRTMin))
	case sig > sigRTMin && sig < sigRTMax:
		name = "SIGRTMAXMINUS" + strconv.Itoa(int(sigRTMax-sig))
	default:
		name = unix.SignalName(sig)
	}
	if v, ok := runtimeapi.Signal_value["SIGNAL_"+name]; ok {
		return runtimeapi.Signal(v)
	}
	return runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT
}
