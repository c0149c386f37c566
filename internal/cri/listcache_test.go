package cri

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func testContainer(id string, state runtimeapi.ContainerState) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id: id, PodSandboxId: "pod-" + id, State: state,
		Metadata:    &runtimeapi.ContainerMetadata{Name: "n-" + id, Attempt: 2},
		Image:       &runtimeapi.ImageSpec{Image: "busybox"},
		Labels:      map[string]string{"a": id, "b": "2"},
		Annotations: map[string]string{"x": strings.Repeat("y", 40)},
	}
}

// A response carrying encoded items decodes, on the client, exactly as the
// same response with the items set.
func TestWithItemsDecodesAsTheItems(t *testing.T) {
	want := &runtimeapi.ListContainersResponse{Containers: []*runtimeapi.Container{
		testContainer("one", runtimeapi.ContainerState_CONTAINER_RUNNING),
		testContainer("two", runtimeapi.ContainerState_CONTAINER_CREATED),
	}}
	var c itemCache
	items, err := c.assemble(len(want.Containers), true,
		func(i int) (string, itemKey) { return want.Containers[i].Id, itemKey{ver: 1} },
		func(i int) proto.Message { return want.Containers[i] })
	if err != nil {
		t.Fatal(err)
	}
	for _, resp := range []proto.Message{
		withItems(&runtimeapi.ListContainersResponse{}, items),
		withItems(&runtimeapi.StreamContainersResponse{}, items),
	} {
		wire, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		got := &runtimeapi.ListContainersResponse{}
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%T decodes to %v, want %v", resp, got, want)
		}
	}
	if n := proto.Size(withItems(&runtimeapi.ListContainersResponse{}, rawItems{})); n != 0 {
		t.Fatalf("an empty list encodes to %d bytes", n)
	}
}

// assemble encodes only the items whose key changed, and a full list drops
// the entries of objects that are gone.
func TestItemCacheReencodesOnlyWhatChanged(t *testing.T) {
	var c itemCache
	objs := map[string]*runtimeapi.Container{}
	keys := map[string]itemKey{}
	for _, id := range []string{"a", "b", "c"} {
		objs[id] = testContainer(id, runtimeapi.ContainerState_CONTAINER_CREATED)
		keys[id] = itemKey{ver: 1}
	}
	list := func(ids []string, all bool) (built []string, got []*runtimeapi.Container) {
		t.Helper()
		items, err := c.assemble(len(ids), all,
			func(i int) (string, itemKey) { return ids[i], keys[ids[i]] },
			func(i int) proto.Message { built = append(built, ids[i]); return objs[ids[i]] })
		if err != nil {
			t.Fatal(err)
		}
		resp := &runtimeapi.ListContainersResponse{}
		if err := proto.Unmarshal(items.buf, resp); err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if !proto.Equal(resp.Containers[i], objs[ids[i]]) {
				t.Fatalf("item %d is %v, want %v", i, resp.Containers[i], objs[ids[i]])
			}
		}
		if items.len() != len(ids) {
			t.Fatalf("%d items, want %d", items.len(), len(ids))
		}
		return built, resp.Containers
	}
	if built, _ := list([]string{"a", "b", "c"}, true); len(built) != 3 {
		t.Fatalf("first list built %v", built)
	}
	if built, _ := list([]string{"a", "b", "c"}, true); len(built) != 0 {
		t.Fatalf("unchanged list built %v", built)
	}
	// Each part of the key counts.
	for _, k := range []itemKey{{ver: 2}, {ver: 2, ref: "sha256:x"}, {ver: 2, ref: "sha256:x", t1: 5}, {ver: 2, ref: "sha256:x", t1: 5, t2: 6}} {
		objs["b"] = testContainer("b", runtimeapi.ContainerState(k.ver%3))
		keys["b"] = k
		built, got := list([]string{"a", "b", "c"}, true)
		if fmt.Sprint(built) != "[b]" || got[1].State != objs["b"].State {
			t.Fatalf("key %+v: built %v, listed %v", k, built, got[1])
		}
	}
	// A filtered list keeps the others' entries; a full one without c
	// drops c's.
	if built, _ := list([]string{"a"}, false); len(built) != 0 {
		t.Fatalf("filtered list built %v", built)
	}
	if len(c.m) != 3 {
		t.Fatalf("filtered list left %d entries, want 3", len(c.m))
	}
	list([]string{"a", "b"}, true)
	if _, ok := c.m["c"]; ok || len(c.m) != 2 {
		t.Fatalf("entries after c is gone: %v", len(c.m))
	}
}

func TestRespCacheHoldsOnlyForItsGenerationsAndRefs(t *testing.T) {
	var c respCache
	items := rawItems{buf: []byte{10, 0}, ends: []int{2}}
	refs := []imageRefPair{{"sha256:1", "reg/a@sha256:2"}}
	c.put("f", respKey{gens: [3]uint64{1, 2, 3}, refs: refs}, items)
	holds := true
	refsValid := func(got []imageRefPair) bool {
		if len(got) != 1 || got[0] != refs[0] {
			t.Fatalf("refs checked: %v", got)
		}
		return holds
	}
	if _, ok := c.get("f", [3]uint64{1, 2, 3}, refsValid); !ok {
		t.Fatal("miss at the same generations")
	}
	for _, g := range [][3]uint64{{2, 2, 3}, {1, 3, 3}, {1, 2, 4}} {
		if _, ok := c.get("f", g, refsValid); ok {
			t.Fatalf("hit at generations %v", g)
		}
	}
	if _, ok := c.get("other", [3]uint64{1, 2, 3}, refsValid); ok {
		t.Fatal("hit for another filter")
	}
	holds = false
	if _, ok := c.get("f", [3]uint64{1, 2, 3}, refsValid); ok {
		t.Fatal("hit after an image reference changed")
	}
	// Bounded: filters of older generations go first.
	for i := range 2 * maxCachedResps {
		c.put(fmt.Sprint(i), respKey{gens: [3]uint64{uint64(i)}}, items)
	}
	if len(c.m) > maxCachedResps {
		t.Fatalf("%d answers kept, over %d", len(c.m), maxCachedResps)
	}
}

func TestFilterKey(t *testing.T) {
	none, err := filterKey((*runtimeapi.ContainerFilter)(nil))
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := filterKey(&runtimeapi.ContainerFilter{})
	if none != "" || empty != "" {
		t.Fatalf("nil and empty filters: %q %q", none, empty)
	}
	seen := map[string]bool{"": true}
	for _, f := range []*runtimeapi.ContainerFilter{
		{Id: "a"}, {PodSandboxId: "a"}, {LabelSelector: map[string]string{"a": "b"}}, {LabelSelector: map[string]string{"a": "c"}},
		{State: &runtimeapi.ContainerStateValue{}}, {State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
	} {
		k, err := filterKey(f)
		if err != nil {
			t.Fatal(err)
		}
		if seen[k] {
			t.Fatalf("filter %v shares its key", f)
		}
		seen[k] = true
	}
	// Deterministic: map order does not matter.
	sel := map[string]string{}
	for i := range 20 {
		sel[fmt.Sprint(i)] = "v"
	}
	a, _ := filterKey(&runtimeapi.ContainerFilter{LabelSelector: sel})
	for range 10 {
		if b, _ := filterKey(&runtimeapi.ContainerFilter{LabelSelector: sel}); b != a {
			t.Fatal("the same filter got two keys")
		}
	}
}

func rawOf(t *testing.T, sizes ...int) rawItems {
	t.Helper()
	var c itemCache
	items, err := c.assemble(len(sizes), false,
		func(i int) (string, itemKey) { return fmt.Sprint(i), itemKey{} },
		func(i int) proto.Message { return &runtimeapi.Image{Id: strings.Repeat("x", sizes[i])} })
	if err != nil {
		t.Fatal(err)
	}
	return items
}

func TestSendRawChunksKeepsEveryChunkUnderTheLimitAndItemsInOrder(t *testing.T) {
	// Each item is field 1 (2 bytes) holding an Image with Id (2 bytes + n).
	items := rawOf(t, 6, 6, 6, 32, 1, 1, 26)
	const limit = 40
	var ids []string
	err := sendRawChunks(items, limit, func(c rawItems) error {
		resp := withItems(&runtimeapi.StreamImagesResponse{}, c)
		if n := proto.Size(resp); n > limit || c.len() == 0 {
			t.Errorf("chunk of %d items encodes to %d bytes (limit %d)", c.len(), n, limit)
		}
		wire, _ := proto.Marshal(resp)
		got := &runtimeapi.StreamImagesResponse{}
		if err := proto.Unmarshal(wire, got); err != nil {
			t.Fatal(err)
		}
		if len(got.Images) != c.len() {
			t.Errorf("chunk decodes to %d items, has %d", len(got.Images), c.len())
		}
		for _, img := range got.Images {
			ids = append(ids, fmt.Sprint(len(img.Id)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids, ","); got != "6,6,6,32,1,1,26" {
		t.Fatalf("items sent: %s", got)
	}
}

func TestSendRawChunksRefusesAnItemOverTheLimitBeforeSending(t *testing.T) {
	items := rawOf(t, 1, 100, 1)
	sent := 0
	err := sendRawChunks(items, 50, func(rawItems) error { sent++; return nil })
	if !errors.Is(err, errdefs.ErrResourceExhausted) || sent != 0 {
		t.Fatalf("err %v after %d sends", err, sent)
	}
	if err := sendRawChunks(rawItems{}, 50, func(rawItems) error { sent++; return nil }); err != nil || sent != 0 {
		t.Fatalf("empty list: %v, %d sends", err, sent)
	}
}
