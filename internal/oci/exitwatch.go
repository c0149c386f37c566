package oci

import (
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// exitWatcher is the one inotify watch on the exit directory. conmon writes
// <id> there by rename when a container exits; the watcher wakes whoever
// waits for that id. Waiters re-check the file after each wake-up, so a
// spurious or lost event (queue overflow) costs a stat, never a missed exit.
type exitWatcher struct {
	file *os.File // inotify fd, in the netpoller
	done chan struct{}

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
	closed  bool
}

func newExitWatcher(dir string) (*exitWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// MOVED_TO: conmon renames its temp file to <id>; CLOSE_WRITE: a writer
	// that writes in place.
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &exitWatcher{
		file:    os.NewFile(uintptr(fd), "inotify:"+dir),
		done:    make(chan struct{}),
		waiters: map[string]map[chan struct{}]struct{}{},
	}
	go w.loop()
	return w, nil
}

func (w *exitWatcher) loop() {
	defer close(w.done)
	buf := make([]byte, 64*1024)
	for {
		n, err := w.file.Read(buf)
		if err != nil {
			w.wakeAll()
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameLen := int(ev.Len)
			start := off + unix.SizeofInotifyEvent
			off = start + nameLen
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				w.wakeAll()
				continue
			}
			if nameLen == 0 || off > n {
				continue
			}
			name := buf[start:off]
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
			w.wake(string(name))
		}
	}
}

// subscribe returns a channel that receives a token whenever <id> may have
// appeared. Call cancel when done. ok is false once the watcher is closed.
func (w *exitWatcher) subscribe(id string) (ch chan struct{}, cancel func(), ok bool) {
	ch = make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, func() {}, false
	}
	set := w.waiters[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		w.waiters[id] = set
	}
	set[ch] = struct{}{}
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.waiters[id], ch)
		if len(w.waiters[id]) == 0 {
			delete(w.waiters, id)
		}
	}, true
}

func (w *exitWatcher) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.waiters[id] {
		notify(ch)
	}
}

func (w *exitWatcher) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, set := range w.waiters {
		for ch := range set {
			notify(ch)
		}
	}
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a token is already pending
	}
}

func (w *exitWatcher) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

func (w *exitWatcher) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	err := w.file.Close()
	<-w.done
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}
