package netns

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// onWorkerThread runs fn on a goroutine locked to an OS thread that is not the
// process's main thread, and waits for it. fn reports whether it left the
// thread in the namespaces it found it in; a thread that is not clean is
// discarded: its goroutine exits still locked, and the Go runtime then ends
// the thread instead of running other goroutines on it.
//
// The main thread is avoided because the runtime never ends it (it parks it
// for good instead) and because its namespaces are the ones /proc/<pid>/ns and
// /proc/self/net show for the whole process: a pod namespace stuck there would
// both leak and mislead.
func onWorkerThread(fn func() (clean bool)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			if fn() {
				runtime.UnlockOSThread()
			}
			return
		}
		// Keep the main thread occupied so the inner goroutine gets another.
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			runtime.LockOSThread()
			if fn() {
				runtime.UnlockOSThread()
			}
		}()
		<-inner
		runtime.UnlockOSThread()
	}()
	<-done
}
