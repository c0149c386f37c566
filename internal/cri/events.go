package cri

import (
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/container"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/sandbox"
)

// Events turns the domain managers' lifecycle hooks into the CRI
// ContainerEventResponse messages of GetContainerEvents (kubelet's Evented
// PLEG) and broadcasts them.
//
// Each message is built when its change happens, with the pod's status and
// the statuses of all of the pod's containers exactly as PodSandboxStatus
// and ContainerStatus report them then: kubelet replaces its cached pod
// status with what an event carries, so a partial list would make it think
// containers vanished. Building and publishing under one lock keeps the
// messages in the order of the changes.
//
// The managers exist before the Server and report what their recovery finds
// (exits while the daemon was down) from their constructors: such changes
// are held until WithEvents binds the Server, then built from the recovered
// state and kept by the broadcaster for the first subscriber.
type Events struct {
	b   *events.Broadcaster[*runtimeapi.ContainerEventResponse]
	log *slog.Logger

	mu      sync.Mutex
	srv     *Server // nil until WithEvents
	pending []change
}

// change is one hook call not yet turned into a message.
type change struct {
	kind events.Kind
	at   time.Time
	ctr  *container.Container // a container's change, or
	pod  *sandbox.Sandbox     // a pod's
}

// NewEvents returns the event source; hand its Container and Sandbox
// methods to the managers' configs and bind it with Server.WithEvents.
func NewEvents(cfg events.Config, log *slog.Logger) *Events {
	return &Events{b: events.New[*runtimeapi.ContainerEventResponse](cfg), log: log}
}

// Container is the container manager's hook (container.EventFunc).
func (e *Events) Container(kind events.Kind, c container.Container) {
	e.add(change{kind: kind, at: time.Now(), ctr: &c})
}

// Sandbox is the sandbox manager's hook (sandbox.EventFunc).
func (e *Events) Sandbox(kind events.Kind, sb sandbox.Sandbox) {
	e.add(change{kind: kind, at: time.Now(), pod: &sb})
}

// Close ends every GetContainerEvents stream (Unavailable), so a graceful
// server stop does not wait for streams that never end by themselves.
func (e *Events) Close() { e.b.Close() }

func (e *Events) add(ch change) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		e.pending = append(e.pending, ch)
		return
	}
	e.publish(ch)
}

// publish builds and broadcasts one message. Callers hold e.mu.
func (e *Events) publish(ch change) {
	if msg := e.srv.eventMessage(ch); msg != nil {
		e.b.Publish(msg)
	}
}

// WithEvents serves GetContainerEvents from e and publishes what e held
// back during recovery.
func (s *Server) WithEvents(e *Events) *Server {
	s.events = e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.srv = s
	for _, ch := range e.pending {
		e.publish(ch)
	}
	e.pending = nil
	return s
}

// eventMessage builds the CRI message of a change; nil when the pod is
// unknown, because kubelet drops events without a pod status anyway.
func (s *Server) eventMessage(ch change) *runtimeapi.ContainerEventResponse {
	msg := &runtimeapi.ContainerEventResponse{CreatedAt: ch.at.UnixNano()}
	switch ch.kind {
	case events.Created:
		msg.ContainerEventType = runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT
	case events.Started:
		msg.ContainerEventType = runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT
	case events.Stopped:
		msg.ContainerEventType = runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT
	case events.Deleted:
		msg.ContainerEventType = runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT
	default:
		return nil
	}
	var sb sandbox.Sandbox
	if ch.pod != nil {
		// For a pod's own event the ID is the pod's, and the pod is the
		// one the hook saw: after Deleted the manager no longer has it.
		msg.ContainerId, sb = ch.pod.ID, *ch.pod
	} else {
		msg.ContainerId = ch.ctr.ID
		if s.pods == nil {
			return nil
		}
		var err error
		if sb, err = s.pods.Get(ch.ctr.SandboxID); err != nil {
			s.events.log.Debug("container event without a pod dropped", "container", ch.ctr.ID, "pod", ch.ctr.SandboxID, "err", err)
			return nil
		}
	}
	msg.PodSandboxStatus = toCRISandboxStatus(&sb)
	msg.ContainersStatuses = s.podContainerStatuses(sb.ID)
	return msg
}

// podContainerStatuses are ContainerStatus's answers for every container
// of the pod.
func (s *Server) podContainerStatuses(podID string) []*runtimeapi.ContainerStatus {
	if s.containers == nil {
		return nil
	}
	cs := s.containers.List(container.Filter{SandboxID: podID})
	out := make([]*runtimeapi.ContainerStatus, 0, len(cs))
	for i := range cs {
		st := cs[i].CRIStatus()
		st.ImageRef = s.imageRef(&cs[i])
		out = append(out, st)
	}
	return out
}

// GetContainerEvents streams lifecycle events of containers and pods until
// the client goes away. A client that falls behind by more than its
// buffer is cut off with ResourceExhausted (it has missed events; kubelet
// relists and subscribes again); daemon shutdown ends the stream with
// Unavailable. The first stream after a quiet spell, such as a restart,
// starts with the events of that spell (up to a minute old).
func (s *Server) GetContainerEvents(_ *runtimeapi.GetEventsRequest, stream grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	if s.events == nil {
		return errdefs.New(errdefs.ErrUnimplemented, "GetContainerEvents: events are not enabled in this daemon")
	}
	sub := s.events.b.Subscribe(stream.Context())
	defer sub.Close()
	for msg := range sub.Events() {
		// A dropped subscriber stops at once rather than first getting
		// its stale buffer.
		if err := sub.Err(); err != nil {
			return err
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
	}
	return sub.Err()
}
