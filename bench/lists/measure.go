package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/cradle-runtime/cradle/bench/internal/benchkit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// variant is one call with one filter, as kubelet makes it.
type variant struct {
	rpc, filter string
	stream      bool // through the streaming client
	// call makes the call for the i-th time and returns the items.
	call func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (answer, error)
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
	{rpc: "Version", filter: "-", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		_, err := rt.Version(ctx, "v1")
		return answer{}, err
	}},
	{rpc: "ListPodSandbox", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListPodSandbox(ctx, nil)
		return answerOf(l), err
	}},
	{rpc: "ListPodSandbox", filter: "state=ready", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}})
		return answerOf(l), err
	}},
	{rpc: "ListPodSandbox", filter: "label", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (answer, error) {
		l, err := rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": s.podOf(i).name}})
		return answerOf(l), err
	}},
	{rpc: "ListContainers", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListContainers(ctx, nil)
		return answerOf(l), err
	}},
	{rpc: "ListContainers", filter: "state=running", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		return answerOf(l), err
	}},
	{rpc: "ListContainers", filter: "pod", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (answer, error) {
		l, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: s.podOf(i).id})
		return answerOf(l), err
	}},
	{rpc: "ListContainerStats", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListContainerStats(ctx, nil)
		return answerOf(l), err
	}},
	{rpc: "ListContainerStats", filter: "pod", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (answer, error) {
		l, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{PodSandboxId: s.podOf(i).id})
		return answerOf(l), err
	}},
	{rpc: "ListPodSandboxStats", filter: "none", call: func(ctx context.Context, rt internalapi.RuntimeService, _ *side, _ int) (answer, error) {
		l, err := rt.ListPodSandboxStats(ctx, nil)
		return answerOf(l), err
	}},
	{rpc: "ListPodSandboxStats", filter: "id", call: func(ctx context.Context, rt internalapi.RuntimeService, s *side, i int) (answer, error) {
		l, err := rt.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{Id: s.podOf(i).id})
		return answerOf(l), err
	}},
}

// answer is what a call listed: how many items, and (computed only when
// asked, outside the timed call) how many bytes they encode to and how
// long the client takes to decode them: a share of every call's time that
// no server can take away.
type answer struct {
	n     int
	bytes func() (int, time.Duration)
}

func answerOf[T proto.Message](items []T) answer {
	return answer{n: len(items), bytes: func() (int, time.Duration) {
		encoded := make([][]byte, len(items))
		n := 0
		for i, it := range items {
			encoded[i], _ = proto.Marshal(it)
			n += len(encoded[i])
		}
		var ds []time.Duration
		for range 5 {
			t0 := time.Now()
			for i, b := range encoded {
				_ = proto.Unmarshal(b, items[i].ProtoReflect().New().Interface())
			}
			ds = append(ds, time.Since(t0))
		}
		return n, benchkit.Percentile(ds, 50)
	}}
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
	ctrdErr   string           // containerd cannot answer: why
	items     [2]int           // what the last call returned: cradle, containerd
	bytes     [2]int           // their encoded size
	decode    [2]time.Duration // the client's time to decode them
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
					a, err := v.call(ctx, rt, s, i*block+j)
					d := time.Since(t0)
					if err != nil {
						return nil, s.d.Explain(fmt.Errorf("%s %s (%s): %w", s.name, v.label(), v.filter, err))
					}
					k := 0
					if s == ctrd {
						k = 1
					}
					if j == 0 && i < 2 && a.bytes != nil {
						c.bytes[k], c.decode[k] = a.bytes()
					}
					c.items[k] = a.n
					spent[k] += d
					if k == 0 {
						c.crdl = append(c.crdl, d)
					} else {
						c.ctrd = append(c.ctrd, d)
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
