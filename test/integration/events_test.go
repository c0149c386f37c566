package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

const (
	evCreated = runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
	evStarted = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
	evStopped = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
	evDeleted = runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
)

// eventStream is one GetContainerEvents subscription made the way kubelet's
// Evented PLEG makes it, through cri-client.
type eventStream struct {
	ch     chan *runtimeapi.ContainerEventResponse
	done   chan struct{}
	err    error // the stream's end; read after done
	cancel context.CancelFunc
	last   int64 // created_at of the last event read
}

func subscribe(t *testing.T, d *daemon) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &eventStream{ch: make(chan *runtimeapi.ContainerEventResponse, 1000), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		s.err = d.Runtime.GetContainerEvents(ctx, s.ch, nil)
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// next returns the next event, failing after 30 s.
func (s *eventStream) next(t *testing.T) *runtimeapi.ContainerEventResponse {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-s.done:
		t.Fatalf("event stream ended: %v", s.err)
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return nil
}

// expect reads the next event and checks its type, subject and pod.
func (s *eventStream) expect(t *testing.T, typ runtimeapi.ContainerEventType, id, podID string) *runtimeapi.ContainerEventResponse {
	t.Helper()
	ev := s.next(t)
	if ev.ContainerEventType != typ || ev.ContainerId != id {
		t.Fatalf("got %v for %.12s, want %v for %.12s", ev.ContainerEventType, ev.ContainerId, typ, id)
	}
	if ev.PodSandboxStatus.GetId() != podID || ev.PodSandboxStatus.GetMetadata().GetUid() == "" {
		t.Fatalf("%v for %.12s: pod status %v, want pod %.12s with metadata", typ, id, ev.PodSandboxStatus, podID)
	}
	if ev.CreatedAt < s.last || ev.CreatedAt > time.Now().UnixNano() {
		t.Errorf("%v for %.12s: created_at %d after %d, or in the future", typ, id, ev.CreatedAt, s.last)
	}
	s.last = ev.CreatedAt
	return ev
}

// statusOf finds a container's status in an event.
func statusOf(ev *runtimeapi.ContainerEventResponse, id string) *runtimeapi.ContainerStatus {
	for _, st := range ev.ContainersStatuses {
		if st.Id == id {
			return st
		}
	}
	return nil
}

// busyboxPodDaemon starts a daemon with the test network and a busybox
// image pulled, and returns the image's name.
func busyboxPodDaemon(t *testing.T) (*daemon, string) {
	t.Helper()
	reg := testkit.NewRegistry(t)
	img, err := testkit.BusyboxImage(testkit.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Push("it/events:1", img); err != nil {
		t.Fatal(err)
	}
	d := newDaemonFiles(t, daemonOpts{})
	withTestNetwork(t, d)
	d.start()
	if _, err := d.Images.PullImage(context.Background(), spec(reg.Ref("it/events:1")), nil, nil); err != nil {
		t.Fatal(err)
	}
	return d, reg.Ref("it/events:1")
}

func TestContainerEventsLifecycle(t *testing.T) {
	needRoot(t)
	d, imageName := busyboxPodDaemon(t)
	ctx := context.Background()
	evs := subscribe(t, d)
	evs.last = time.Now().UnixNano() // created_at is in ns since the epoch

	pod := podConfig("events", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := evs.expect(t, evCreated, podID, podID)
	ev = evs.expect(t, evStarted, podID, podID)
	podStatus, err := d.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ev.PodSandboxStatus, podStatus.Status) || len(ev.ContainersStatuses) != 0 {
		t.Errorf("pod STARTED carries %v and %d containers, want PodSandboxStatus's %v and none",
			ev.PodSandboxStatus, len(ev.ContainersStatuses), podStatus.Status)
	}
	if ev.PodSandboxStatus.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("pod STARTED with state %v", ev.PodSandboxStatus.State)
	}

	// Create, start, stop and remove a container: four events in order,
	// each with the statuses of that moment.
	sleeper, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("sleeper", imageName, "sleep", "1000"), pod)
	if err != nil {
		t.Fatal(err)
	}
	ev = evs.expect(t, evCreated, sleeper, podID)
	if st := statusOf(ev, sleeper); st.GetState() != runtimeapi.ContainerState_CONTAINER_CREATED {
		t.Errorf("CREATED carries %v", st)
	}
	if err := d.Runtime.StartContainer(ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	ev = evs.expect(t, evStarted, sleeper, podID)
	ctrStatus, err := d.Runtime.ContainerStatus(ctx, sleeper, false)
	if err != nil {
		t.Fatal(err)
	}
	if st := statusOf(ev, sleeper); !proto.Equal(st, ctrStatus.Status) || st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("STARTED carries %v, want ContainerStatus's %v", st, ctrStatus.Status)
	}
	// PodSandboxStatus carries the same container statuses, for the
	// Evented PLEG's relist of one pod.
	podStatus, err = d.Runtime.PodSandboxStatus(ctx, podID, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(podStatus.ContainersStatuses) != 1 || !proto.Equal(podStatus.ContainersStatuses[0], ctrStatus.Status) || podStatus.Timestamp <= ev.CreatedAt {
		t.Errorf("PodSandboxStatus carries containers %v at %d, want ContainerStatus's %v after %d",
			podStatus.ContainersStatuses, podStatus.Timestamp, ctrStatus.Status, ev.CreatedAt)
	}
	if err := d.Runtime.StopContainer(ctx, sleeper, 0); err != nil {
		t.Fatal(err)
	}
	ev = evs.expect(t, evStopped, sleeper, podID)
	if st := statusOf(ev, sleeper); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.FinishedAt == 0 {
		t.Errorf("STOPPED carries %v, want exited 137", st)
	}
	if err := d.Runtime.RemoveContainer(ctx, sleeper); err != nil {
		t.Fatal(err)
	}
	ev = evs.expect(t, evDeleted, sleeper, podID)
	if statusOf(ev, sleeper) != nil {
		t.Errorf("DELETED still lists the removed container: %v", ev.ContainersStatuses)
	}

	// A container that exits by itself: STOPPED with its exit code.
	quitter, err := d.Runtime.CreateContainer(ctx, podID, containerConfig("quitter", imageName, "sh", "-c", "exit 3"), pod)
	if err != nil {
		t.Fatal(err)
	}
	evs.expect(t, evCreated, quitter, podID)
	if err := d.Runtime.StartContainer(ctx, quitter); err != nil {
		t.Fatal(err)
	}
	evs.expect(t, evStarted, quitter, podID)
	ev = evs.expect(t, evStopped, quitter, podID)
	if st := statusOf(ev, quitter); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("STOPPED of a container that exited by itself carries %v, want exited 3", st)
	}

	// Stopping the pod stops only the pod (its container is already
	// exited); removing it deletes the container and then the pod.
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	ev = evs.expect(t, evStopped, podID, podID)
	if ev.PodSandboxStatus.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY || statusOf(ev, quitter).GetExitCode() != 3 {
		t.Errorf("pod STOPPED carries %v and %v", ev.PodSandboxStatus.State, ev.ContainersStatuses)
	}
	if err := d.Runtime.StopPodSandbox(ctx, podID); err != nil { // idempotent, and quiet
		t.Fatal(err)
	}
	if err := d.Runtime.RemovePodSandbox(ctx, podID); err != nil {
		t.Fatal(err)
	}
	evs.expect(t, evDeleted, quitter, podID)
	ev = evs.expect(t, evDeleted, podID, podID)
	if len(ev.ContainersStatuses) != 0 {
		t.Errorf("pod DELETED lists containers: %v", ev.ContainersStatuses)
	}
	select {
	case ev := <-evs.ch:
		t.Errorf("unexpected event %v for %.12s", ev.ContainerEventType, ev.ContainerId)
	default:
	}
}

// exitFile is where conmon records the exit of container id.
func exitFile(t *testing.T, d *daemon, id string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(d.state, "oci", "*", "exits", id))
	if len(files) == 1 {
		return files[0]
	}
	return ""
}

func TestContainerEventsAcrossRestart(t *testing.T) {
	needRoot(t)
	d, imageName := busyboxPodDaemon(t)
	ctx := context.Background()
	pod := podConfig("evrestart", runtimeapi.NamespaceMode_CONTAINER)
	pod.LogDirectory = filepath.Join(d.dir, "logs")
	podID, err := d.Runtime.RunPodSandbox(ctx, pod, "")
	if err != nil {
		t.Fatal(err)
	}
	// It exits with 5 once /go exists: while the daemon is down.
	waiter, err := d.Runtime.CreateContainer(ctx, podID,
		containerConfig("waiter", imageName, "sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; exit 5"), pod)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Runtime.StartContainer(ctx, waiter); err != nil {
		t.Fatal(err)
	}
	evs := subscribe(t, d)
	// What happened before the subscription was kept for it.
	for _, want := range []struct {
		typ runtimeapi.ContainerEventType
		id  string
	}{{evCreated, podID}, {evStarted, podID}, {evCreated, waiter}, {evStarted, waiter}} {
		evs.expect(t, want.typ, want.id, podID)
	}

	// A graceful stop ends the open stream with Unavailable rather than
	// waiting for it (which would take the 10 s shutdown timeout).
	stopStart := time.Now()
	d.stop()
	if took := time.Since(stopStart); took > 8*time.Second {
		t.Errorf("daemon stop took %v with an event stream open", took)
	}
	<-evs.done
	if status.Code(evs.err) != codes.Unavailable {
		t.Errorf("stream ended with %v, want Unavailable", evs.err)
	}

	rootfs := filepath.Join(d.state, "containers", waiter, "rootfs")
	if err := os.WriteFile(filepath.Join(rootfs, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the container to exit while the daemon is down", func() bool {
		return exitFile(t, d, waiter) != ""
	})

	d.start()
	evs = subscribe(t, d)
	ev := evs.expect(t, evStopped, waiter, podID)
	if st := statusOf(ev, waiter); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 5 {
		t.Errorf("STOPPED after restart carries %v, want exited 5", st)
	}
	if ev.CreatedAt < stopStart.UnixNano() {
		t.Errorf("created_at %d is before the restart", ev.CreatedAt)
	}
	// The stream is live after the replay.
	if err := d.Runtime.RemoveContainer(ctx, waiter); err != nil {
		t.Fatal(err)
	}
	evs.expect(t, evDeleted, waiter, podID)
}

func TestContainerEventsSubscriberThatNeverReads(t *testing.T) {
	needRoot(t)
	d := startDaemon(t, daemonOpts{})
	ctx := context.Background()

	// A raw stream whose client never reads. Fixed flow-control windows
	// (they turn gRPC's dynamic window off) bound what the transport
	// buffers, so the daemon's own per-subscriber buffer must fill.
	conn, err := grpc.NewClient("unix://"+d.socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	stream, err := runtimeapi.NewRuntimeServiceClient(conn).GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}

	// Host-network pods need no CNI, so each operation is quick; a large
	// annotation makes each event a few KiB.
	annotation := strings.Repeat("x", 4096)
	hostPod := func(i int) *runtimeapi.PodSandboxConfig {
		p := podConfig(fmt.Sprintf("slow-%d", i), runtimeapi.NamespaceMode_CONTAINER)
		p.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		p.Annotations = map[string]string{"big": annotation}
		return p
	}
	// One event read proves the subscription is registered; then the
	// client stops reading.
	first, err := d.Runtime.RunPodSandbox(ctx, hostPod(-1), "")
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := stream.Recv(); err != nil || ev.ContainerId != first {
		t.Fatalf("first event %v, %v", ev, err)
	}

	const pairs = 100 // 200 operations, 400 events of ~4.5 KiB
	opsStart := time.Now()
	opsCtx, opsCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer opsCancel()
	for i := range pairs {
		id, err := d.Runtime.RunPodSandbox(opsCtx, hostPod(i), "")
		if err != nil {
			t.Fatalf("RunPodSandbox %d after %v: %v", i, time.Since(opsStart), err)
		}
		if err := d.Runtime.RemovePodSandbox(opsCtx, id); err != nil {
			t.Fatalf("RemovePodSandbox %d after %v: %v", i, time.Since(opsStart), err)
		}
	}
	t.Logf("%d operations with a stalled subscriber took %v", 2*pairs, time.Since(opsStart))

	// The stalled subscriber was cut off: reading now yields at most what
	// was buffered, then ResourceExhausted.
	n := 0
	for {
		_, err := stream.Recv()
		if err == nil {
			n++
			if n > 2*pairs*2 {
				t.Fatalf("read %d events without the stream ending: the subscriber was not dropped", n)
			}
			continue
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("stalled stream ended after %d events with %v, want ResourceExhausted", n, err)
		}
		break
	}
	if n >= 2*pairs*2 {
		t.Errorf("got all %d events although the subscriber was dropped", n)
	}
	t.Logf("the stalled stream delivered %d buffered events, then ResourceExhausted", n)

	// kubelet's reconnect gets a working stream.
	evs := subscribe(t, d)
	id, err := d.Runtime.RunPodSandbox(ctx, hostPod(pairs), "")
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev := evs.next(t)
		if ev.ContainerId == id && ev.ContainerEventType == evStarted {
			break
		}
		// The replay of the quiet spell between the two streams may
		// come first, but never a pod created before that spell.
		if ev.ContainerId == first {
			t.Fatalf("new stream replays %v of the first pod", ev.ContainerEventType)
		}
	}
}
