package cri

import (
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// maxStreamMessage is the size a Stream* response must not exceed: the
// receive limit of kubelet's client, the same as the daemon's send limit.
const maxStreamMessage = MaxMsgSize

// The Stream* RPCs answer exactly what their List* twins answer (same
// filter, same items, same errors, Unimplemented included), cut into
// responses kubelet can receive. Each response holds at least one item; an
// empty list is a stream with no response.

// StreamPodSandboxes is ListPodSandbox in chunks.
func (s *Server) StreamPodSandboxes(req *runtimeapi.StreamPodSandboxesRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxesResponse]) error {
	items, err := s.podSandboxItems("StreamPodSandboxes", req.GetFilter())
	if err != nil {
		return err
	}
	return sendRawChunks(items, maxStreamMessage, func(c rawItems) error {
		return ss.Send(withItems(&runtimeapi.StreamPodSandboxesResponse{}, c))
	})
}

// StreamContainers is ListContainers in chunks.
func (s *Server) StreamContainers(req *runtimeapi.StreamContainersRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamContainersResponse]) error {
	items, err := s.containerItems("StreamContainers", req.GetFilter())
	if err != nil {
		return err
	}
	return sendRawChunks(items, maxStreamMessage, func(c rawItems) error {
		return ss.Send(withItems(&runtimeapi.StreamContainersResponse{}, c))
	})
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *Server) StreamContainerStats(req *runtimeapi.StreamContainerStatsRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamContainerStatsResponse]) error {
	items, err := s.containerStatsItems("StreamContainerStats", req.GetFilter())
	if err != nil {
		return err
	}
	return sendRawChunks(items, maxStreamMessage, func(c rawItems) error {
		return ss.Send(withItems(&runtimeapi.StreamContainerStatsResponse{}, c))
	})
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *Server) StreamPodSandboxStats(req *runtimeapi.StreamPodSandboxStatsRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxStatsResponse]) error {
	items, err := s.podSandboxStatsItems("StreamPodSandboxStats", req.GetFilter())
	if err != nil {
		return err
	}
	return sendRawChunks(items, maxStreamMessage, func(c rawItems) error {
		return ss.Send(withItems(&runtimeapi.StreamPodSandboxStatsResponse{}, c))
	})
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Server) StreamPodSandboxMetrics(_ *runtimeapi.StreamPodSandboxMetricsRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamPodSandboxMetricsResponse]) error {
	resp, err := s.ListPodSandboxMetrics(ss.Context(), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetPodMetrics(), maxStreamMessage, func(c []*runtimeapi.PodSandboxMetrics) error {
		return ss.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: c})
	})
}

// StreamImages is ListImages in chunks.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, ss grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	resp, err := s.ListImages(ss.Context(), &runtimeapi.ListImagesRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetImages(), maxStreamMessage, func(c []*runtimeapi.Image) error {
		return ss.Send(&runtimeapi.StreamImagesResponse{Images: c})
	})
}

// sendChunks sends items in order, in as few chunks as fit: each chunk,
// encoded as the repeated field 1 of a response (every Stream* response
// has its items there and nothing else), takes at most limit bytes. An
// item that cannot fit even alone fails the call before anything is sent:
// kubelet would act on a list with a hole in it.
func sendChunks[T proto.Message](items []T, limit int, send func([]T) error) error {
	sizes := make([]int, len(items))
	for i, it := range items {
		sizes[i] = protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(it))
		if sizes[i] > limit {
			return errdefs.New(errdefs.ErrResourceExhausted,
				"item %d of the list (%T) encodes to %d bytes, over the %d-byte message limit", i, it, sizes[i], limit)
		}
	}
	start, size := 0, 0
	for i, n := range sizes {
		if size+n > limit {
			if err := send(items[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(items) {
		return send(items[start:])
	}
	return nil
}

// sendRawChunks is sendChunks for encoded items (listcache.go): each chunk
// is a run of whole items of at most limit bytes, sent as is.
func sendRawChunks(items rawItems, limit int, send func(rawItems) error) error {
	for i := range items.len() {
		if n := len(items.item(i)); n > limit {
			return errdefs.New(errdefs.ErrResourceExhausted,
				"item %d of the list encodes to %d bytes, over the %d-byte message limit", i, n, limit)
		}
	}
	first, start := 0, 0 // first item of the chunk, and where it starts in buf
	for i, end := range items.ends {
		if end-start > limit {
			// Item i does not fit: the chunk ends before it.
			if err := send(rawItems{buf: items.buf[start:items.ends[i-1]], ends: offsets(items.ends[first:i], start)}); err != nil {
				return err
			}
			first, start = i, items.ends[i-1]
		}
	}
	if first < items.len() {
		return send(rawItems{buf: items.buf[start:], ends: offsets(items.ends[first:], start)})
	}
	return nil
}

// offsets shifts ends back by start, for a chunk of a longer buffer.
func offsets(ends []int, start int) []int {
	out := make([]int, len(ends))
	for i, e := range ends {
		out[i] = e - start
	}
	return out
}
