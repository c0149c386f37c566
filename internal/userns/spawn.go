package userns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// Holder is a stopped child process that is the only member of a new user
// namespace and of the other namespaces created with it. While it lives,
// /proc/<Pid>/ns/* name those namespaces, so they can be pinned; Close ends
// it. It must be used (and closed) on the goroutine that called Spawn.
type Holder struct {
	Pid int
	cmd *exec.Cmd
}

// Spawn creates a user namespace with opts' mappings and, in the same
// clone(2), new namespaces of the given extra flags (CLONE_NEWNET,
// CLONE_NEWIPC, CLONE_NEWUTS), which the kernel then makes owned by the new
// user namespace: the pod's root is privileged over its own network, IPC and
// UTS namespaces (sysfs, sysctls, hostname) and over nothing else.
//
// Why a child process: a multi-threaded process (every Go program) can
// neither unshare(CLONE_NEWUSER) nor setns into a user namespace, and a
// namespace created later from outside would be owned by the host's user
// namespace. The child is traced, so the kernel stops it right after its
// exec and before it runs any code; it needs no program of its own.
// Pdeathsig kills it should the daemon die before Close.
//
// Spawn locks the calling goroutine to its thread until Close: ptrace and
// Pdeathsig are tied to the thread that forked.
func Spawn(opts *Options, extraFlags uintptr) (*Holder, error) {
	if opts == nil {
		return nil, errdefs.InvalidArgument("spawn user namespace: no mappings")
	}
	if err := opts.UID.check("uid"); err != nil {
		return nil, err
	}
	if err := opts.GID.check("gid"); err != nil {
		return nil, err
	}
	idmap := func(m Mapping) []syscall.SysProcIDMap {
		return []syscall.SysProcIDMap{{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}}
	}
	cmd := &exec.Cmd{
		// Our own binary, whatever happened to its path since start-up
		// (an upgrade replaces it); it never runs.
		Path: "/proc/self/exe",
		Args: []string{"cradle-userns-holder"},
		Env:  []string{},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER | extraFlags,
			UidMappings: idmap(opts.UID),
			GidMappings: idmap(opts.GID),
			// Pods call setgroups (supplemental groups); "deny" in
			// /proc/<pid>/setgroups would forbid it for good.
			GidMappingsEnableSetgroups: true,
			Ptrace:                     true,
			Pdeathsig:                  unix.SIGKILL,
		},
	}
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EUSERS) {
			return nil, errdefs.WithKind(errdefs.ErrResourceExhausted, fmt.Errorf("create user namespace: %w", err))
		}
		return nil, fmt.Errorf("create user namespace: %w", err)
	}
	return &Holder{Pid: cmd.Process.Pid, cmd: cmd}, nil
}

// NSPath is the namespace file of kind ("user", "net", ...) of the holder.
func (h *Holder) NSPath(kind string) string { return fmt.Sprintf("/proc/%d/ns/%s", h.Pid, kind) }

// Close kills and reaps the holder; namespaces pinned meanwhile live on.
func (h *Holder) Close() error {
	defer runtime.UnlockOSThread()
	if err := h.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill user namespace holder %d: %w", h.Pid, err)
	}
	// The error is the expected "signal: killed".
	_ = h.cmd.Wait()
	return nil
}
