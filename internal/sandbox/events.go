package sandbox

import "github.com/cradle-runtime/cradle/internal/events"

// EventFunc hears of a pod's lifecycle change: Created and Started once a
// Run has saved the pod READY, Stopped once its record says NOTREADY (a
// Stop, a Remove, or recovery finding its namespaces gone), Deleted once
// its record is erased. It gets the pod as Get returns it at that moment
// (for Deleted: its last state). It runs synchronously, under the pod's
// lock, so calls for one pod come in order; it must not block and must
// not call back into this pod's Stop, Remove or Run.
type EventFunc func(kind events.Kind, sb Sandbox)

// emit calls Config.Events. Callers hold p.mu.
func (m *Manager) emit(kind events.Kind, p *pod) {
	if m.cfg.Events != nil {
		m.cfg.Events(kind, p.snapshot())
	}
}

// emitRun announces a finished Run. The pod has no separate start step:
// it is created and running (READY) at once, and kubelet expects both.
func (m *Manager) emitRun(p *pod) {
	m.emit(events.Created, p)
	m.emit(events.Started, p)
}
