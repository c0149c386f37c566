package cri

import (
	"slices"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Encoded list answers.
//
// kubelet relists pods and containers every second and polls stats, and
// the answers barely change between calls. So the list RPCs answer from
// bytes encoded before, at two levels:
//
//   - respCache keeps each answer, per filter, with the generations of the
//     domain state it was built from (sandbox.Manager.Generation and its
//     twins, which change after every change a list could show; for
//     containers also the image references their items name). While they
//     hold, the call costs a map lookup.
//   - itemCache keeps each object's encoded item with the object's version
//     (and whatever else the item shows), so a rebuild after one change
//     encodes only what changed.
//
// An answer leaves as the response's unknown fields: protobuf writes those
// verbatim, so gRPC's own codec sends the stored bytes without encoding
// anything, and the wire is exactly that of a response with the items set
// (each item is field 1, the list field of every List*/Stream* response).
// No lock is held while anything is encoded; a cache's lock covers only
// its map.

// rawItems are encoded items: each as field 1 (tag, length, message), ends
// marks where each one ends in buf.
type rawItems struct {
	buf  []byte
	ends []int
}

// len is the number of items.
func (r rawItems) len() int { return len(r.ends) }

// item returns the i-th item's bytes as field 1.
func (r rawItems) item(i int) []byte {
	start := 0
	if i > 0 {
		start = r.ends[i-1]
	}
	return r.buf[start:r.ends[i]]
}

// withItems makes m, an empty response, carry items on the wire. The
// returned message must not be changed: buf is shared with the cache (and
// protobuf only reads unknown fields when it encodes).
func withItems[M proto.Message](m M, items rawItems) M {
	if len(items.buf) > 0 {
		m.ProtoReflect().SetUnknown(items.buf[:len(items.buf):len(items.buf)])
	}
	return m
}

// itemKey is everything an encoded item depends on besides its object's
// identity: the object's version and, for items that show more (image
// references, stats samples), those too.
type itemKey struct {
	ver, t1, t2 uint64
	ref         string
}

type cachedItem struct {
	key itemKey
	msg []byte // the message, without tag and length
}

// itemCache keeps the encoded items of one kind by object ID.
type itemCache struct {
	mu sync.Mutex
	m  map[string]cachedItem
}

// maxCachedItems bounds an itemCache that only filtered lists visit (a
// full list drops removed objects); beyond it the cache starts over.
const maxCachedItems = 1 << 16

// assemble encodes n items, reusing the cached encoding of each whose key
// is unchanged and encoding the others (build is called outside the lock).
// all says the list holds every object of its kind: entries of objects
// it lacks are dropped then.
func (c *itemCache) assemble(n int, all bool, idKey func(i int) (string, itemKey), build func(i int) proto.Message) (rawItems, error) {
	ids := make([]string, n)
	keys := make([]itemKey, n)
	for i := range n {
		ids[i], keys[i] = idKey(i)
	}
	msgs := make([][]byte, n)
	hit := make([]bool, n)
	c.mu.Lock()
	for i := range n {
		if e, ok := c.m[ids[i]]; ok && e.key == keys[i] {
			msgs[i], hit[i] = e.msg, true
		}
	}
	c.mu.Unlock()
	missed := 0
	for i := range n {
		if hit[i] {
			continue
		}
		b, err := proto.Marshal(build(i))
		if err != nil {
			return rawItems{}, err
		}
		msgs[i] = b
		missed++
	}
	if missed > 0 || all {
		c.mu.Lock()
		if c.m == nil || len(c.m)+missed > maxCachedItems {
			c.m = make(map[string]cachedItem, n)
		}
		for i := range n {
			if !hit[i] {
				c.m[ids[i]] = cachedItem{key: keys[i], msg: msgs[i]}
			}
		}
		if all && len(c.m) > n {
			// Some object is gone: keep only the listed ones.
			keep := make(map[string]cachedItem, n)
			for _, id := range ids {
				keep[id] = c.m[id]
			}
			c.m = keep
		}
		c.mu.Unlock()
	}
	size := 0
	for _, b := range msgs {
		size += protowire.SizeTag(1) + protowire.SizeBytes(len(b))
	}
	out := rawItems{buf: make([]byte, 0, size), ends: make([]int, n)}
	for i, b := range msgs {
		out.buf = protowire.AppendTag(out.buf, 1, protowire.BytesType)
		out.buf = protowire.AppendBytes(out.buf, b)
		out.ends[i] = len(out.buf)
	}
	return out, nil
}

// respKey says what an answer was built from: the generations of the
// domain state it read, and the image references its items name (image ID
// → what imageRef answered), which the image store may change.
type respKey struct {
	gens [3]uint64
	refs []imageRefPair
}

type imageRefPair struct{ id, ref string }

type cachedResp struct {
	key   respKey
	items rawItems
}

// respCache keeps one kind of answer per filter.
type respCache struct {
	mu sync.Mutex
	m  map[string]cachedResp
}

// maxCachedResps bounds the filters remembered per kind: kubelet's are
// the empty one, a state, and one per pod (ID or UID label).
const maxCachedResps = 1024

// get returns the answer built for filter at gens, if any; refsValid
// checks that its image references still resolve the same.
func (c *respCache) get(filter string, gens [3]uint64, refsValid func([]imageRefPair) bool) (rawItems, bool) {
	c.mu.Lock()
	e, ok := c.m[filter]
	c.mu.Unlock()
	if !ok || e.key.gens != gens || (len(e.key.refs) > 0 && !refsValid(e.key.refs)) {
		return rawItems{}, false
	}
	return e.items, true
}

// put stores an answer built from key.
func (c *respCache) put(filter string, key respKey, items rawItems) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedResp{}
	}
	if _, ok := c.m[filter]; !ok && len(c.m) >= maxCachedResps {
		// Answers of older generations are of no more use.
		for f, e := range c.m {
			if e.key.gens != key.gens {
				delete(c.m, f)
			}
		}
		if len(c.m) >= maxCachedResps {
			clear(c.m)
		}
	}
	c.m[filter] = cachedResp{key: key, items: items}
}

// filterKey is a filter's identity: its deterministic encoding ("" for
// none).
func filterKey(f proto.Message) (string, error) {
	if f == nil || !f.ProtoReflect().IsValid() {
		return "", nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	return string(b), err
}

// listCaches are the server's caches, one pair per list.
type listCaches struct {
	pods, containers, ctrStats, podStats respCache
	podItems, ctrItems, ctrStatItems     itemCache
}

// sortedRefs is refs as a sorted slice, for a respKey.
func sortedRefs(refs map[string]string) []imageRefPair {
	out := make([]imageRefPair, 0, len(refs))
	for id, ref := range refs {
		out = append(out, imageRefPair{id, ref})
	}
	slices.SortFunc(out, func(a, b imageRefPair) int {
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	return out
}
