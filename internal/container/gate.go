package container

import (
	"context"
	"sync"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// sandboxGates keep a pod's stop and the creates in it apart. A create
// checks that its pod is ready and then works for tens of milliseconds; a
// StopPodSandbox in between would list the pod's containers without it,
// tear the pod down, and leave a container created in a stopped pod. So a
// create enters its pod's gate before checking, and a stop closes the gate:
// later creates are refused, creates in flight are cancelled (and undo
// themselves) and waited for, so the stop then sees every container.
type sandboxGates struct {
	mu    sync.Mutex
	gates map[string]*gate // by sandbox ID
}

type gate struct {
	closed   bool
	ctx      context.Context // cancelled when the gate closes
	cancel   context.CancelFunc
	inflight sync.WaitGroup
	entered  int // creates in flight, under sandboxGates.mu
}

// enter admits a create into the sandbox: the context ends when the
// sandbox stops; leave must be called when the create has settled.
//
// An open gate with no create in it holds nothing, so the last create to
// leave drops it: otherwise every CreateContainer naming a pod that does
// not exist would leave a gate behind for good. A closed gate stays until
// forget.
func (g *sandboxGates) enter(sandboxID string) (ctx context.Context, leave func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates == nil {
		g.gates = map[string]*gate{}
	}
	gt := g.gates[sandboxID]
	if gt == nil {
		gt = &gate{}
		gt.ctx, gt.cancel = context.WithCancel(context.Background())
		g.gates[sandboxID] = gt
	}
	if gt.closed {
		return nil, nil, errdefs.FailedPrecondition("sandbox %s is stopping or stopped", sandboxID)
	}
	gt.inflight.Add(1)
	gt.entered++
	return gt.ctx, func() {
		g.mu.Lock()
		gt.entered--
		if gt.entered == 0 && !gt.closed && g.gates[sandboxID] == gt {
			delete(g.gates, sandboxID)
			gt.cancel()
		}
		g.mu.Unlock()
		gt.inflight.Done()
	}, nil
}

// close refuses further creates in the sandbox, cancels those in flight
// and waits for them to settle.
func (g *sandboxGates) close(sandboxID string) {
	g.mu.Lock()
	if g.gates == nil {
		g.gates = map[string]*gate{}
	}
	gt := g.gates[sandboxID]
	if gt == nil {
		gt = &gate{closed: true}
		gt.ctx, gt.cancel = context.WithCancel(context.Background())
		g.gates[sandboxID] = gt
	}
	gt.closed = true
	g.mu.Unlock()
	gt.cancel()
	// No Add after closed is set (enter checks it under the lock), so the
	// WaitGroup is used as documented.
	gt.inflight.Wait()
}

// forget drops the sandbox's gate once the sandbox is removed: a create
// for it is then refused by the sandbox lookup.
func (g *sandboxGates) forget(sandboxID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gt := g.gates[sandboxID]; gt != nil {
		gt.cancel()
		delete(g.gates, sandboxID)
	}
}
