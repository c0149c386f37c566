package integration

import (
	"context"
	"maps"
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// listModel is what the lists must show: pods and containers with their
// state and labels, kept by the test as it changes them.
type listModel struct {
	pods map[string]modelPod
	ctrs map[string]modelCtr
}

type modelPod struct {
	state  runtimeapi.PodSandboxState
	labels map[string]string
}

type modelCtr struct {
	pod    string
	state  runtimeapi.ContainerState
	labels map[string]string
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestListAnswersFollowEveryChange: the list RPCs answer from cached bytes
// (internal/cri/listcache.go), so after every change — a new pod or
// container, each state change, a removal — each list, with each of
// kubelet's filters, is asked twice before the change (so an answer is
// cached) and must show the change after it, unary and streamed alike.
func TestListAnswersFollowEveryChange(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/listcache:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/listcache:1")
	d, podA, podAID, _ := podWithImage(t, "lc-a", imageName)
	ctx := context.Background()
	rt, _ := rawClients(t, d)
	m := listModel{pods: map[string]modelPod{}, ctrs: map[string]modelCtr{}}
	m.pods[podAID] = modelPod{runtimeapi.PodSandboxState_SANDBOX_READY, podA.Labels}

	podFilters := func() []*runtimeapi.PodSandboxFilter {
		fs := []*runtimeapi.PodSandboxFilter{nil,
			{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}},
			{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}},
			{LabelSelector: map[string]string{"app": "lc-a"}},
			{LabelSelector: map[string]string{"suite": "it"}},
		}
		for id := range m.pods {
			fs = append(fs, &runtimeapi.PodSandboxFilter{Id: id}, &runtimeapi.PodSandboxFilter{Id: id[:12]})
		}
		return fs
	}
	ctrFilters := func() []*runtimeapi.ContainerFilter {
		fs := []*runtimeapi.ContainerFilter{nil, {LabelSelector: map[string]string{"container": "one"}}}
		for _, st := range []runtimeapi.ContainerState{runtimeapi.ContainerState_CONTAINER_CREATED,
			runtimeapi.ContainerState_CONTAINER_RUNNING, runtimeapi.ContainerState_CONTAINER_EXITED} {
			fs = append(fs, &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: st}})
		}
		for id := range m.pods {
			fs = append(fs, &runtimeapi.ContainerFilter{PodSandboxId: id})
		}
		for id := range m.ctrs {
			fs = append(fs, &runtimeapi.ContainerFilter{Id: id})
		}
		return fs
	}

	// check asks every list with every filter twice: the second answer may
	// come from the cache and must equal the first, and the model.
	check := func(step string) {
		t.Helper()
		for range 2 {
			for _, f := range podFilters() {
				var want []string
				for id, p := range m.pods {
					if (f.GetId() == "" || id[:len(f.GetId())] == f.GetId()) &&
						(f.GetState() == nil || f.GetState().State == p.state) && matches(p.labels, f.GetLabelSelector()) {
						want = append(want, id)
					}
				}
				listed, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
				if err != nil {
					t.Fatalf("%s: ListPodSandbox(%v): %v", step, f, err)
				}
				s, err := rt.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{Filter: f})
				streamed, err := drain(t, s, err, (*runtimeapi.StreamPodSandboxesResponse).GetPodSandboxes)
				if err != nil {
					t.Fatalf("%s: StreamPodSandboxes(%v): %v", step, f, err)
				}
				sameItems(t, step+": pods", streamed, listed.Items)
				var got []string
				for _, p := range listed.Items {
					got = append(got, p.Id)
					if mp := m.pods[p.Id]; p.State != mp.state || !maps.Equal(p.Labels, mp.labels) {
						t.Errorf("%s: pod %s listed %v %v, want %v %v", step, p.Id, p.State, p.Labels, mp.state, mp.labels)
					}
				}
				if slices.Sort(got); !slices.Equal(got, sorted(want)) {
					t.Errorf("%s: ListPodSandbox(%v) = %v, want %v", step, f, got, sorted(want))
				}
			}
			for _, f := range ctrFilters() {
				var want []string
				for id, c := range m.ctrs {
					if (f.GetId() == "" || id == f.GetId()) && (f.GetPodSandboxId() == "" || c.pod == f.GetPodSandboxId()) &&
						(f.GetState() == nil || f.GetState().State == c.state) && matches(c.labels, f.GetLabelSelector()) {
						want = append(want, id)
					}
				}
				listed, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: f})
				if err != nil {
					t.Fatalf("%s: ListContainers(%v): %v", step, f, err)
				}
				s, err := rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: f})
				streamed, err := drain(t, s, err, (*runtimeapi.StreamContainersResponse).GetContainers)
				if err != nil {
					t.Fatalf("%s: StreamContainers(%v): %v", step, f, err)
				}
				sameItems(t, step+": containers", streamed, listed.Containers)
				var got []string
				for _, c := range listed.Containers {
					got = append(got, c.Id)
					if mc := m.ctrs[c.Id]; c.State != mc.state || c.PodSandboxId != mc.pod || !maps.Equal(c.Labels, mc.labels) {
						t.Errorf("%s: container %s listed %v in %s %v, want %v in %s %v", step, c.Id, c.State, c.PodSandboxId, c.Labels, mc.state, mc.pod, mc.labels)
					}
				}
				if slices.Sort(got); !slices.Equal(got, sorted(want)) {
					t.Errorf("%s: ListContainers(%v) = %v, want %v", step, f, got, sorted(want))
				}
			}
			// Stats: who is listed, and CPU exactly for running containers
			// (the item depends on the state, not only on the sample).
			for _, f := range []*runtimeapi.ContainerStatsFilter{nil, {PodSandboxId: podAID}} {
				listed, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{Filter: f})
				if err != nil {
					t.Fatalf("%s: ListContainerStats: %v", step, err)
				}
				s, err := rt.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{Filter: f})
				streamed, err := drain(t, s, err, (*runtimeapi.StreamContainerStatsResponse).GetContainerStats)
				if err != nil {
					t.Fatalf("%s: StreamContainerStats: %v", step, err)
				}
				var want, got, gotStreamed []string
				for id, c := range m.ctrs {
					if f.GetPodSandboxId() == "" || c.pod == f.GetPodSandboxId() {
						want = append(want, id)
					}
				}
				for _, st := range listed.Stats {
					id := st.GetAttributes().GetId()
					got = append(got, id)
					if running := m.ctrs[id].state == runtimeapi.ContainerState_CONTAINER_RUNNING; (st.Cpu != nil) != running {
						t.Errorf("%s: stats of %s (running %v) have CPU %v", step, id, running, st.Cpu)
					}
				}
				for _, st := range streamed {
					gotStreamed = append(gotStreamed, st.GetAttributes().GetId())
				}
				slices.Sort(got)
				slices.Sort(gotStreamed)
				if !slices.Equal(got, sorted(want)) || !slices.Equal(gotStreamed, got) {
					t.Errorf("%s: ListContainerStats(%v) = %v, streamed %v, want %v", step, f, got, gotStreamed, sorted(want))
				}
			}
			listed, err := rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
			if err != nil {
				t.Fatalf("%s: ListPodSandboxStats: %v", step, err)
			}
			var got []string
			for _, st := range listed.Stats {
				got = append(got, st.GetAttributes().GetId())
				var ctrs []string
				for _, c := range st.GetLinux().GetContainers() {
					ctrs = append(ctrs, c.GetAttributes().GetId())
				}
				var want []string
				for id, c := range m.ctrs {
					if c.pod == st.GetAttributes().GetId() {
						want = append(want, id)
					}
				}
				if slices.Sort(ctrs); !slices.Equal(ctrs, sorted(want)) {
					t.Errorf("%s: pod stats of %s hold containers %v, want %v", step, st.GetAttributes().GetId(), ctrs, sorted(want))
				}
			}
			if slices.Sort(got); !slices.Equal(got, sorted(slices.Collect(maps.Keys(m.pods)))) {
				t.Errorf("%s: ListPodSandboxStats = %v, want %v", step, got, sorted(slices.Collect(maps.Keys(m.pods))))
			}
		}
	}

	check("one pod")
	c1, err := d.Runtime.CreateContainer(ctx, podAID, containerConfig("one", imageName, "sleep", "1000"), podA)
	if err != nil {
		t.Fatal(err)
	}
	m.ctrs[c1] = modelCtr{podAID, runtimeapi.ContainerState_CONTAINER_CREATED, map[string]string{"container": "one"}}
	check("created")
	if err := d.Runtime.StartContainer(ctx, c1); err != nil {
		t.Fatal(err)
	}
	m.ctrs[c1] = modelCtr{podAID, runtimeapi.ContainerState_CONTAINER_RUNNING, map[string]string{"container": "one"}}
	check("started")

	podB := podConfig("lc-b", runtimeapi.NamespaceMode_CONTAINER)
	podB.LogDirectory = podA.LogDirectory
	podBID, err := d.Runtime.RunPodSandbox(ctx, podB, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podBID)
		_ = d.Runtime.RemovePodSandbox(ctx, podBID)
	})
	m.pods[podBID] = modelPod{runtimeapi.PodSandboxState_SANDBOX_READY, podB.Labels}
	c2, err := d.Runtime.CreateContainer(ctx, podBID, containerConfig("two", imageName, "sleep", "1000"), podB)
	if err != nil {
		t.Fatal(err)
	}
	m.ctrs[c2] = modelCtr{podBID, runtimeapi.ContainerState_CONTAINER_CREATED, map[string]string{"container": "two"}}
	check("second pod")

	if err := d.Runtime.StopContainer(ctx, c1, 0); err != nil {
		t.Fatal(err)
	}
	m.ctrs[c1] = modelCtr{podAID, runtimeapi.ContainerState_CONTAINER_EXITED, map[string]string{"container": "one"}}
	check("stopped")
	if err := d.Runtime.RemoveContainer(ctx, c1); err != nil {
		t.Fatal(err)
	}
	delete(m.ctrs, c1)
	check("container removed")
	if err := d.Runtime.StopPodSandbox(ctx, podAID); err != nil {
		t.Fatal(err)
	}
	m.pods[podAID] = modelPod{runtimeapi.PodSandboxState_SANDBOX_NOTREADY, podA.Labels}
	check("pod stopped")
	if err := d.Runtime.RemovePodSandbox(ctx, podAID); err != nil {
		t.Fatal(err)
	}
	delete(m.pods, podAID)
	check("pod removed")
}
