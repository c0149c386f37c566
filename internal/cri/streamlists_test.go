package cri

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func images(sizes ...int) []*runtimeapi.Image {
	out := make([]*runtimeapi.Image, len(sizes))
	for i, n := range sizes {
		// Id is field 1: 1 byte tag + 1 byte length + n bytes (n < 128).
		out[i] = &runtimeapi.Image{Id: strings.Repeat("x", n)}
	}
	return out
}

func TestSendChunksKeepsEveryChunkUnderTheLimitAndItemsInOrder(t *testing.T) {
	items := images(10, 10, 10, 36, 1, 1, 30)
	const limit = 40
	var chunks [][]*runtimeapi.Image
	err := sendChunks(items, limit, func(c []*runtimeapi.Image) error {
		chunks = append(chunks, c)
		// The real response: what gRPC would put on the wire.
		if n := proto.Size(&runtimeapi.StreamImagesResponse{Images: c}); n > limit {
			t.Errorf("chunk of %d items encodes to %d bytes, over %d", len(c), n, limit)
		}
		if len(c) == 0 {
			t.Error("empty chunk")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []*runtimeapi.Image
	for _, c := range chunks {
		got = append(got, c...)
	}
	if len(got) != len(items) {
		t.Fatalf("sent %d items, want %d", len(got), len(items))
	}
	for i := range items {
		if got[i] != items[i] {
			t.Fatalf("item %d out of order", i)
		}
	}
	if len(chunks) < 3 {
		t.Errorf("%d chunks: the limit was not applied", len(chunks))
	}
}

func TestSendChunksFillsChunksExactlyToTheLimit(t *testing.T) {
	// Each item: 2+8 = 10 bytes inside the image, +2 in the response = 12.
	items := images(8, 8, 8, 8, 8)
	var sizes []int
	err := sendChunks(items, 24, func(c []*runtimeapi.Image) error {
		sizes = append(sizes, len(c))
		return nil
	})
	if err != nil || len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 || sizes[2] != 1 {
		t.Fatalf("chunks = %v, %v; want [2 2 1]", sizes, err)
	}
}

func TestSendChunksRefusesAnItemOverTheLimit(t *testing.T) {
	sent := 0
	err := sendChunks(images(5, 100, 5), 50, func(c []*runtimeapi.Image) error {
		sent += len(c)
		return nil
	})
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "item 1") {
		t.Fatalf("err = %v", err)
	}
	if sent != 0 {
		t.Errorf("%d items sent before the error: a partial list must not look whole", sent)
	}
}

func TestSendChunksEmptyAndSendError(t *testing.T) {
	calls := 0
	if err := sendChunks(images(), 50, func([]*runtimeapi.Image) error { calls++; return nil }); err != nil || calls != 0 {
		t.Errorf("empty list: %d sends, %v", calls, err)
	}
	boom := errors.New("client gone")
	if err := sendChunks(images(30, 30), 40, func([]*runtimeapi.Image) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("send error = %v", err)
	}
}
