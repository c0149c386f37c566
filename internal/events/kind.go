// Package events fans lifecycle events of containers and pod sandboxes out
// to subscribers (GetContainerEvents streams, kubelet's Evented PLEG).
//
// The Broadcaster never lets a subscriber slow the publisher down: each
// subscriber has a bounded buffer, and one that falls behind is dropped
// (its stream ends with ResourceExhausted, and kubelet relists and
// subscribes again) rather than making lifecycle calls wait. Events
// published while nobody listens are kept for a short while, so the
// subscriber that reconnects after a daemon restart or a dropped stream
// still learns what happened in the gap (exits found during recovery).
//
// The package knows nothing of CRI messages: it carries whatever value the
// caller publishes, and names the four lifecycle transitions.
package events

// Kind is a lifecycle transition, the same four for containers and pods.
type Kind int

const (
	Created Kind = iota + 1
	Started
	Stopped
	Deleted
)

func (k Kind) String() string {
	switch k {
	case Created:
		return "created"
	case Started:
		return "started"
	case Stopped:
		return "stopped"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}
