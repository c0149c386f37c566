package container

import "github.com/cradle-runtime/cradle/internal/events"

// EventFunc hears of a container's lifecycle change: Created once its
// record says created, Started once running, Stopped once its exit is
// recorded (a Stop, an exit of its own, or one found by recovery), and
// Deleted once it is gone. It gets the container as Status returns it at
// that moment (for Deleted: its last state). Calls for one container come
// in that order; the function runs synchronously on the lifecycle path
// and must not block.
type EventFunc func(kind events.Kind, c Container)

// emit calls Config.Events after a change is recorded. Recording is
// durable unless the write failed; then memory, which Status reports,
// still holds the truth (see update), so the event is sent all the same.
func (m *Manager) emit(kind events.Kind, c *ctr) {
	if m.cfg.Events != nil {
		m.cfg.Events(kind, c.view())
	}
}
