package sandbox

import (
	"slices"
	"strings"
)

// Filter selects pods for List; zero fields select everything.
type Filter struct {
	ID            string // an ID or a prefix of one
	State         State  // Ready or NotReady
	LabelSelector map[string]string
}

// Generation changes after every change List could show. Read it before
// listing: a list taken after Generation returned g shows every change
// made before g, so what was built from it is stale once Generation
// differs from g. The CRI layer caches encoded list responses on it.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

// ListShared is List without the copies: the views are shared and must not
// be changed (each is replaced, never modified, when its pod changes).
// The CRI layer's lists use it; callers that keep or hand out a pod use
// List.
func (m *Manager) ListShared(f Filter) []*Sandbox {
	m.mu.Lock()
	out := make([]*Sandbox, 0, len(m.byID))
	for id, p := range m.byID {
		if !strings.HasPrefix(id, f.ID) {
			continue
		}
		v := p.view.Load()
		if v == nil || v.State == Creating || (f.State != "" && v.State != f.State) || !matchLabels(v.Config.GetLabels(), f.LabelSelector) {
			continue
		}
		out = append(out, v)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b *Sandbox) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// List returns the pods matching f, oldest first, from memory.
func (m *Manager) List(f Filter) []Sandbox {
	m.mu.Lock()
	pods := make([]*pod, 0, len(m.byID))
	for id, p := range m.byID {
		if strings.HasPrefix(id, f.ID) {
			pods = append(pods, p)
		}
	}
	m.mu.Unlock()

	var out []Sandbox
	for _, p := range pods {
		if !p.visible() {
			continue
		}
		v := p.view.Load()
		if f.State != "" && v.State != f.State {
			continue
		}
		if !matchLabels(v.Config.GetLabels(), f.LabelSelector) {
			continue
		}
		out = append(out, p.snapshot())
	}
	slices.SortFunc(out, func(a, b Sandbox) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func matchLabels(labels, sel map[string]string) bool {
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// CountByState counts the pods in each state, from memory, holding the
// index lock only to copy it (the metrics gauges read it at scrape time).
func (m *Manager) CountByState() map[State]int {
	m.mu.Lock()
	pods := make([]*pod, 0, len(m.byID))
	for _, p := range m.byID {
		pods = append(pods, p)
	}
	m.mu.Unlock()
	out := map[State]int{}
	for _, p := range pods {
		if p.visible() {
			out[p.view.Load().State]++
		}
	}
	return out
}
