package container

import (
	"syscall"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStatus.stop_signal reports what StopContainer will send.
func TestReportedStopSignal(t *testing.T) {
	for _, tc := range []struct {
		cri   runtimeapi.Signal
		image string
		want  runtimeapi.Signal
	}{
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "", runtimeapi.Signal_SIGNAL_SIGTERM},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGQUIT", runtimeapi.Signal_SIGNAL_SIGQUIT},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGBOGUS", runtimeapi.Signal_SIGNAL_SIGTERM},
		{runtimeapi.Signal_SIGNAL_SIGUSR1, "SIGQUIT", runtimeapi.Signal_SIGNAL_SIGUSR1},
		{runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT, "SIGRTMIN+3", runtimeapi.Signal_SIGNAL_SIGRTMINPLUS3},
		{runtimeapi.Signal(999), "", runtimeapi.Signal(999)},
	} {
		if got := reportedStopSignal(tc.cri, tc.image); got != tc.want {
			t.Errorf("reportedStopSignal(%s, %q) = %s, want %s", tc.cri, tc.image, got, tc.want)
		}
	}
}

// Every CRI signal survives the round trip CRI → kernel → CRI, up to the
// aliases that name the same kernel signal.
func TestCRISignalRoundTrip(t *testing.T) {
	aliases := map[runtimeapi.Signal]runtimeapi.Signal{
		runtimeapi.Signal_SIGNAL_SIGCLD:  runtimeapi.Signal_SIGNAL_SIGCHLD,
		runtimeapi.Signal_SIGNAL_SIGIOT:  runtimeapi.Signal_SIGNAL_SIGABRT,
		runtimeapi.Signal_SIGNAL_SIGPOLL: runtimeapi.Signal_SIGNAL_SIGIO,
	}
	for v := range runtimeapi.Signal_name {
		in := runtimeapi.Signal(v)
		if in == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
			continue
		}
		sig, err := stopSignal(in, "")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		want := in
		if a, ok := aliases[in]; ok {
			want = a
		}
		if got := criSignal(sig); got != want {
			t.Errorf("criSignal(%d) = %s, want %s", sig, got, want)
		}
	}
	if got := criSignal(syscall.Signal(200)); got != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		t.Errorf("criSignal(200) = %s, want RUNTIME_DEFAULT", got)
	}
}
