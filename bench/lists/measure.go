package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// variant is one call with one filter, as kubelet makes it.
type variant struct {
	rpc, filter string
	stream      bool // through the streaming client
	// call makes the call for the i-th time and returns the items.
	call func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (int, error)
}

// method is the full gRPC method cradle serves the variant with.
func (v variant) method() string {
	name := v.rpc
	if v.stream {
		name = streamTwin[v.rpc]
	}
	return "/runtime.v1.RuntimeService/" + name
}

func (v variant) label() string {
	if v.stream {
		return streamTwin[v.rpc]
	}
	return v.rpc
}

var streamTwin = map[string]string{
	"ListPodSandbox": "StreamPodSandboxes", "ListContainers": "StreamContainers",
	"ListContainerStats": "StreamContainerStats", "ListPodSandboxStats": "StreamPodSandboxStats",
	"Version": "Version",
}

// podOf picks the i-th call's pod, round the pods.
func (s *side) podOf(i int) *pod { return &s.pods[i%len(s.pods)] }

// baseVariants are kubelet's list calls: the PLEG relist (everything),
// the garbage collector and the sync loop (by state, by pod, by the pod's
// UID label), the stats provider (everything, and by pod).
var baseVariants = []variant{
	{rpc: "Version", filter: "-", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		_, err := rt.Version(ctx, "v1")
		return 0, err
	}},
	{rpc: "ListPodSandbox", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListPodSandbox(ctx, nil)
		return len(l), err
	}},
	{rpc: "ListPodSandbox", filter: "state=ready", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		return len(l), err
	}},
	{rpc: "ListPodSandbox", filter: "label", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (int, error) {
		l, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": s.podOf(i).name}})
		return len(l), err
	}},
	{rpc: "ListContainers", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListContainers(ctx, nil)
		return len(l), err
	}},
	{rpc: "ListContainers", filter: "state=running", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		return len(l), err
	}},
	{rpc: "ListContainers", filter: "pod", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (int, error) {
		l, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: s.podOf(i).id})
		return len(l), err
	}},
	{rpc: "ListContainerStats", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListContainerStats(ctx, nil)
		return len(l), err
	}},
	{rpc: "ListContainerStats", filter: "pod", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (int, error) {
		l, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: s.podOf(i).id})
		return len(l), err
	}},
	{rpc: "ListPodSandboxStats", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (int, error) {
		l, err := rt.ListPodSandboxStats(ctx, nil)
		return len(l), err
	}},
	{rpc: "ListPodSandboxStats", filter: "id", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (int, error) {
		l, err := rt.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{Id: s.podOf(i).id})
		return len(l), err
	}},
}

// variants are the base ones, then each list call again in streaming mode.
var variants = func() []variant {
	out := append([]variant(nil), baseVariants...)
	for _, v := range baseVariants {
		if v.rpc != "Version" {
			v.stream = true
			out = append(out, v)
		}
	}
	return out
}()

// cell is one variant at one size, measured on both runtimes.
type cell struct {
	size      int
	v         variant
	crdl      []time.Duration
	ctrd      []time.Duration
	ctrdErr   string // containerd cannot answer: why
	items     [2]int // what the last call returned: cradle, containerd
	server    serverTimes
	hasServer bool
}

// minCalls is the fewest timed calls per runtime and cell, whatever the
// budget: p99 is then the largest but one.
const minCalls = 40

// measureSize measures every variant at the current size: calls per
// runtime in alternating blocks, after one untimed call each. A cell ends
// early, with both runtimes at the same count (at least minCalls), once
// either has spent budget in it: containerd's pod stats take seconds a call
// at 110 pods on a loaded machine.
func measureSize(ctx context.Context, size, calls, block int, budget time.Duration, crdl, ctrd *side) ([]cell, error) {
	var out []cell
	for _, v := range variants {
		c := cell{size: size, v: v}
		clientOf := func(s *side) internalapi.RuntimeService {
			if v.stream {
				return s.stream
			}
			return s.d.Runtime
		}
		if _, err := v.call(ctx, clientOf(crdl), crdl, 0); err != nil {
			return nil, crdl.d.Explain(fmt.Errorf("cradle %s (%s): %w", v.label(), v.filter, err))
		}
		ctrdOK := true
		if _, err := v.call(ctx, clientOf(ctrd), ctrd, 0); err != nil {
			if status.Code(err) != codes.Unimplemented {
				return nil, ctrd.d.Explain(fmt.Errorf("containerd %s (%s): %w", v.label(), v.filter, err))
			}
			ctrdOK, c.ctrdErr = false, "Unimplemented"
		}
		before, err := crdl.serverTimes(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cradle server times: %v\n", err)
		}
		var spent [2]time.Duration
		for i := 0; i*block < calls; i++ {
			if i*block >= minCalls && (spent[0] > budget || spent[1] > budget) {
				break
			}
			sides := []*side{crdl, ctrd}
			if i%2 == 1 {
				sides = []*side{ctrd, crdl}
			}
			for _, s := range sides {
				if s == ctrd && !ctrdOK {
					continue
				}
				rt := clientOf(s)
				for j := range min(block, calls-i*block) {
					t0 := time.Now()
					n, err := v.call(ctx, rt, s, i*block+j)
					d := time.Since(t0)
					if err != nil {
						return nil, s.d.Explain(fmt.Errorf("%s %s (%s): %w", s.name, v.label(), v.filter, err))
					}
					if s == crdl {
						c.crdl, c.items[0] = append(c.crdl, d), n
						spent[0] += d
					} else {
						c.ctrd, c.items[1] = append(c.ctrd, d), n
						spent[1] += d
					}
				}
			}
		}
		fmt.Fprintf(os.Stderr, "  %d %s (%s): %d calls, cradle p50 %s, containerd p50 %s\n", size, v.label(), v.filter, len(c.crdl),
			benchkit.FormatMs(benchkit.Percentile(c.crdl, 50)), benchkit.FormatMs(benchkit.Percentile(c.ctrd, 50)))
		if before != nil {
			after, err := crdl.serverTimes(ctx)
			if err == nil {
				c.server, c.hasServer = after.since(before, v.method()), true
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func (c cell) ratios() (p50, p99 float64) {
	return benchkit.Ratio(float64(benchkit.Percentile(c.crdl, 50)), float64(benchkit.Percentile(c.ctrd, 50))),
		benchkit.Ratio(float64(benchkit.Percentile(c.crdl, 99)), float64(benchkit.Percentile(c.ctrd, 99)))
}
