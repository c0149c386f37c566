// Package oci is the one place that knows the command lines of the OCI runtime
// (runc, or a runc-compatible binary per RuntimeClass handler: crun, runsc,
// kata) and of conmon, the small C monitor that keeps a container's stdio,
// writes its CRI log file and records its exit code.
//
// # One container, one conmon
//
// Create starts conmon, which forks `runc create` and reports the container's
// pid on a sync pipe (conmon's --api-version 1 protocol: one JSON line,
// {"data": pid} or {"data": -1, "message": runtime stderr}). conmon daemonizes
// (it forks once and the first process exits after writing --conmon-pidfile),
// calls setsid and becomes a subreaper of the container, so it outlives the
// daemon. When the container exits it writes the exit code to
// <state>/exits/<id> (atomically, by rename) and exits itself. Start, Kill,
// State, Delete and UpdateResources run the runtime binary directly; ExecSync
// runs `runc exec` in the foreground (no conmon: cheaper, and runc reaps the
// exec'd process itself).
//
// # On-disk layout (this package owns StateDir)
//
//	<StateDir>/exits/<id>          exit code, written by conmon (mtime = finish time)
//	<StateDir>/attach/<name>       conmon's symlink to the bundle (name: the ID, hashed to 32 hex when longer); attach socket at <name>/attach
//	<StateDir>/ctr/<id>/           conmon's --persist-dir and working directory:
//	    conmon.pid                 the long-lived conmon's pid
//	    pid                        the container's pid (runc --pid-file)
//	    oom                        present when the container was OOM-killed
//	    monitor.json               what this package needs after a restart
//	    exit-message               why an exit was recorded by us, not conmon
//	    exec-*/                    one directory per running ExecSync
//
// conmon also creates two FIFOs, ctl and winsz, and the attach socket inside
// the bundle directory; Delete removes them.
//
// # Reaping without stealing
//
// The daemon is a child subreaper (PR_SET_CHILD_SUBREAPER), so the long-lived
// conmon, orphaned by its own double fork, is re-parented to the daemon and
// must be reaped by it, or it stays a zombie. A reaper that calls wait(-1)
// would also collect the exit statuses of exec.Cmd children (runc exec, the
// first conmon) before their own Wait, so this package never waits for "any
// child". It opens a pidfd for each conmon it knows (its pid comes from
// --conmon-pidfile, written before the first conmon exits, so it is already
// our child by then), parks the pidfd in Go's netpoller (no thread per
// container), and when it turns readable calls waitid(P_PIDFD, WNOHANG): that
// reaps exactly this process, and fails harmlessly with ECHILD when the
// process is not our child (after a daemon restart conmon belongs to init).
//
// If conmon dies before the container (killed, OOM), the container's init is
// re-parented to the daemon too: the monitor watch then adopts the container
// pid the same way and writes the exit file itself, with the real exit code
// when it could reap the process and 255 (unknown) when it could not.
//
// Killing a process tree (an ExecSync past its timeout; conmon, runc create,
// runc init and hooks of a Create that failed or timed out) freezes every
// member with SIGSTOP and opens a pidfd for it before sending SIGKILL, so the
// pids cannot be reused under us; members that end up re-parented to the
// daemon are then reaped through those pidfds.
//
// # Restart
//
// Nothing lives only in memory. A new Runtime over the same StateDir re-arms
// the watch of every conmon still running (checking /proc that the pid is
// still that conmon), and exit codes recorded while the daemon was down are
// read from the exit files.
//
// # Host quirks handled here
//
//   - conmon tries to set its own oom_score_adj to -1000 and logs (at debug)
//     when that is denied; it then resets to 0 before running runc, which may
//     also be denied. Both are harmless: conmon is started with the daemon's
//     own oom_score_adj and this package never asks for another.
//   - --systemd-cgroup is passed (to conmon and to every runtime call) only
//     when the cgroup driver is systemd; otherwise runc uses the cgroupfs
//     path of the spec's cgroupsPath.
//   - conmon splits --log-path at ':' (driver:path), so log paths with a
//     colon are refused.
package oci
