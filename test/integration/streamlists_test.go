package integration

import (
	"context"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// rawClients dial the daemon without cri-client, whose Stream* wrappers
// fall back to List* and would hide a broken stream.
func rawClients(t *testing.T, d *daemon) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+d.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// drain reads a stream to EOF; every response must carry at least one item.
func drain[R any, T any](t *testing.T, s grpc.ServerStreamingClient[R], err error, items func(*R) []T) ([]T, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	var out []T
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if len(items(r)) == 0 {
			t.Errorf("a stream response without items")
		}
		out = append(out, items(r)...)
	}
}

func sameItems[T proto.Message](t *testing.T, what string, streamed, listed []T) {
	t.Helper()
	if len(streamed) != len(listed) {
		t.Fatalf("%s: streamed %d items, listed %d", what, len(streamed), len(listed))
	}
	for i := range listed {
		if !proto.Equal(streamed[i], listed[i]) {
			t.Errorf("%s: item %d streamed %v, listed %v", what, i, streamed[i], listed[i])
		}
	}
}

func TestStreamListsAnswerWhatListsAnswer(t *testing.T) {
	needRoot(t)
	reg := testkit.NewRegistry(t)
	img := testkit.MustImage(t, testkit.ImageConfig{Cmd: []string{"sh"}}, testkit.Must(testkit.BusyboxLayer(testkit.Gzip)))
	if _, err := reg.Push("it/stream:1", img); err != nil {
		t.Fatal(err)
	}
	imageName := reg.Ref("it/stream:1")
	d, pod, podID, _ := podWithImage(t, "stream", imageName)
	ctx := context.Background()
	t.Cleanup(func() {
		_ = d.Runtime.StopPodSandbox(ctx, podID)
		_ = d.Runtime.RemovePodSandbox(ctx, podID)
	})
	var running string
	for _, name := range []string{"one", "two", "three"} {
		id, err := d.Runtime.CreateContainer(ctx, podID, containerConfig(name, imageName, "sleep", "1000"), pod)
		if err != nil {
			t.Fatal(err)
		}
		if name == "two" {
			if err := d.Runtime.StartContainer(ctx, id); err != nil {
				t.Fatal(err)
			}
			waitState(t, d, id, runtimeapi.ContainerState_CONTAINER_RUNNING)
			running = id
		}
	}
	rt, im := rawClients(t, d)

	// Containers: all, and with a state filter.
	for _, f := range []*runtimeapi.ContainerFilter{nil, {State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}}} {
		s, err := rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: f})
		streamed, err := drain(t, s, err, (*runtimeapi.StreamContainersResponse).GetContainers)
		if err != nil {
			t.Fatal(err)
		}
		listed, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		sameItems(t, "containers", streamed, listed.Containers)
		if want := map[bool]int{true: 3, false: 1}[f == nil]; len(streamed) != want {
			t.Errorf("filter %v: %d containers, want %d", f, len(streamed), want)
		}
	}
	if s, err := rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: 42},
	}}); err == nil {
		_, err = drain(t, s, err, (*runtimeapi.StreamContainersResponse).GetContainers)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("bad filter: %v, want InvalidArgument as ListContainers answers", err)
		}
	}

	s1, err := rt.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{})
	pods, err := drain(t, s1, err, (*runtimeapi.StreamPodSandboxesResponse).GetPodSandboxes)
	if err != nil {
		t.Fatal(err)
	}
	listedPods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, "pods", pods, listedPods.Items)
	if len(pods) != 1 || pods[0].Id != podID {
		t.Errorf("pods = %v", pods)
	}

	s2, err := im.StreamImages(ctx, &runtimeapi.StreamImagesRequest{})
	imgs, err := drain(t, s2, err, (*runtimeapi.StreamImagesResponse).GetImages)
	if err != nil {
		t.Fatal(err)
	}
	listedImgs, err := im.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, "images", imgs, listedImgs.Images)
	if len(imgs) != 1 {
		t.Errorf("images = %v", imgs)
	}

	// Stats change between calls: compare who is reported, not the numbers.
	f := &runtimeapi.ContainerStatsFilter{Id: running}
	s3, err := rt.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{Filter: f})
	stats, err := drain(t, s3, err, (*runtimeapi.StreamContainerStatsResponse).GetContainerStats)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].GetAttributes().GetId() != running {
		t.Errorf("container stats = %v", stats)
	}

	// Pod stats and metrics answer as their List twins do, whether those
	// are implemented yet or not.
	s4, err := rt.StreamPodSandboxStats(ctx, &runtimeapi.StreamPodSandboxStatsRequest{})
	podStats, streamErr := drain(t, s4, err, (*runtimeapi.StreamPodSandboxStatsResponse).GetPodSandboxStats)
	listedPodStats, listErr := rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
	if status.Code(streamErr) != status.Code(listErr) || (listErr == nil && len(podStats) != len(listedPodStats.Stats)) {
		t.Errorf("StreamPodSandboxStats = %d items, %v; ListPodSandboxStats = %v", len(podStats), streamErr, listErr)
	}
	s5, err := rt.StreamPodSandboxMetrics(ctx, &runtimeapi.StreamPodSandboxMetricsRequest{})
	metrics, streamErr := drain(t, s5, err, (*runtimeapi.StreamPodSandboxMetricsResponse).GetPodSandboxMetrics)
	listedMetrics, listErr := rt.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if status.Code(streamErr) != status.Code(listErr) || (listErr == nil && len(metrics) != len(listedMetrics.PodMetrics)) {
		t.Errorf("StreamPodSandboxMetrics = %d items, %v; ListPodSandboxMetrics = %v", len(metrics), streamErr, listErr)
	}
}
