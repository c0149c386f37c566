// Package crashpoint lets tests kill the daemon between two recorded steps
// of an operation, exactly as a SIGKILL would, to prove that recovery
// finishes or undoes whatever the crash interrupted.
//
// Hit(name) marks such a place. In the shipped binary it is an empty
// function that the compiler removes. Built with the `crashpoints` tag (the
// integration tests build the daemon so), the daemon reads
// CRADLE_CRASH_AT=<name>[#<n>] at start and, on the n-th Hit of that name
// (the first by default), kills itself with SIGKILL: no deferred function,
// no cleanup, no flush, as in a real crash.
//
// Every name is listed in All, so a test can walk them.
package crashpoint

// EnvVar names the environment variable that arms a crash point.
const EnvVar = "CRADLE_CRASH_AT"

// The crash points. Names are "<operation>/<place>"; the place says what
// has already happened.
const (
	RunRecorded       = "RunPodSandbox/record-saved"
	RunNamespaces     = "RunPodSandbox/namespaces-pinned"
	RunFiles          = "RunPodSandbox/files-written"
	RunShm            = "RunPodSandbox/shm-mounted"
	RunNetRecorded    = "RunPodSandbox/network-intent-saved"
	RunNetAttached    = "RunPodSandbox/network-attached"
	RunInitRecorded   = "RunPodSandbox/init-intent-saved"
	RunInitStarted    = "RunPodSandbox/init-started"
	RunReady          = "RunPodSandbox/ready-saved"
	StopPodContainers = "StopPodSandbox/containers-stopped"
	StopPodNotReady   = "StopPodSandbox/notready-saved"
	StopPodInit       = "StopPodSandbox/init-stopped"
	StopPodNetwork    = "StopPodSandbox/network-detached"
	StopPodUnpinned   = "StopPodSandbox/namespaces-unpinned"
	RemovePodStopped  = "RemovePodSandbox/stopped"
	RemovePodFiles    = "RemovePodSandbox/files-removed"

	CreateRecorded  = "CreateContainer/intent-saved"
	CreateRootfs    = "CreateContainer/rootfs-mounted"
	CreateBundle    = "CreateContainer/bundle-written"
	CreateConmon    = "OCICreate/conmon-running-unrecorded" // conmon runs (a container or a pod init), its record is not written
	CreateOCI       = "CreateContainer/runtime-created"
	CreateCreated   = "CreateContainer/created-saved"
	StartRan        = "StartContainer/runtime-started"
	StartRecorded   = "StartContainer/running-saved"
	StopSignalled   = "StopContainer/signalled"
	StopKilled      = "StopContainer/killed"
	RemoveRecorded  = "RemoveContainer/removing-saved"
	RemoveDeleted   = "RemoveContainer/runtime-deleted"
	RemoveUnmounted = "RemoveContainer/rootfs-unmounted"
	RemoveBundle    = "RemoveContainer/bundle-removed"
	ExecRunning     = "ExecSync/process-running"
	UpdateApplied   = "UpdateContainerResources/runtime-updated"
	UpdateBundle    = "UpdateContainerResources/bundle-rewritten"

	PullMidLayer      = "PullImage/mid-layer"
	PullLayerCommited = "PullImage/layer-committed"
	PullBeforeRecord  = "PullImage/before-image-record"
	RemoveImageRecord = "RemoveImage/record-removed"
)

// All lists every crash point, in the order an operation meets them.
var All = []string{
	PullMidLayer, PullLayerCommited, PullBeforeRecord,
	RunRecorded, RunNamespaces, RunFiles, RunShm, RunNetRecorded, RunNetAttached, RunInitRecorded, RunInitStarted, RunReady,
	CreateRecorded, CreateRootfs, CreateBundle, CreateConmon, CreateOCI, CreateCreated,
	StartRan, StartRecorded,
	ExecRunning,
	UpdateApplied, UpdateBundle,
	StopSignalled, StopKilled,
	RemoveRecorded, RemoveDeleted, RemoveUnmounted, RemoveBundle,
	StopPodContainers, StopPodNotReady, StopPodInit, StopPodNetwork, StopPodUnpinned,
	RemovePodStopped, RemovePodFiles,
	RemoveImageRecord,
}
