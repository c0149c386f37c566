package layer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// fillWith returns the diff ID of a tarball of ents and a fill unpacking it.
func fillWith(t *testing.T, ents ...tent) (digest.Digest, FillFunc) {
	data := buildTar(t, ents...)
	diffID := digest.FromBytes(data)
	return diffID, func(ctx context.Context, dir string) (Info, error) {
		st, err := Apply(ctx, dir, bytes.NewReader(data))
		return Info{DiffID: diffID, Size: st.Bytes}, err
	}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "layers"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *Store) waiters(id digest.Digest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.fills[id]; c != nil {
		return c.waiters
	}
	return -1
}

func (s *Store) refs(id digest.Digest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.layers[id]; l != nil {
		return l.refs
	}
	return -1
}

// storeNames lists the store dir and its tmp/.
func storeNames(t *testing.T, s *Store) (top, tmp []string) {
	return names(t, s.dir), names(t, filepath.Join(s.dir, tmpDirName))
}

func TestEnsureCommitsLayer(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	diff1, fill1 := fillWith(t, reg("etc/os-release", "ID=test"))
	info, err := s.Ensure(ctx, diff1, "", fill1)
	if err != nil {
		t.Fatal(err)
	}
	if info.ChainID != diff1 || info.Parent != "" || info.DiffID != diff1 || info.Size != 7 {
		t.Errorf("info = %+v", info)
	}
	if got := readFile(t, filepath.Join(s.DiffDir(diff1), "etc/os-release")); got != "ID=test" {
		t.Errorf("content = %q", got)
	}

	diff2, fill2 := fillWith(t, reg("etc/.wh.os-release", ""), reg("bin/app", "app"))
	chain2 := ChainID(diff1, diff2)
	info2, err := s.Ensure(ctx, chain2, diff1, fill2)
	if err != nil {
		t.Fatal(err)
	}
	if info2.ChainID != chain2 || info2.Parent != diff1 || info2.DiffID != diff2 {
		t.Errorf("info2 = %+v", info2)
	}
	if got, ok := s.Get(chain2); !ok || got != info2 {
		t.Errorf("Get = %+v, %v", got, ok)
	}
	if want := filepath.Join(s.dir, chain2.Encoded(), diffName); s.DiffDir(chain2) != want {
		t.Errorf("DiffDir = %q, want %q", s.DiffDir(chain2), want)
	}
	if top, tmp := storeNames(t, s); len(top) != 3 || len(tmp) != 0 {
		t.Errorf("store holds %v, tmp %v", top, tmp)
	}
	// The record on disk is what a restart loads.
	s2, err := Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s2.Get(chain2); !ok || got != info2 {
		t.Errorf("after reopen Get = %+v, %v", got, ok)
	}
}

func TestEnsureConcurrentRunsFillOnce(t *testing.T) {
	s := openStore(t)
	diffID, fill := fillWith(t, reg("f", "x"))
	release := make(chan struct{})
	var calls atomic.Int32
	counted := func(ctx context.Context, dir string) (Info, error) {
		calls.Add(1)
		<-release
		return fill(ctx, dir)
	}
	const n = 8
	var wg sync.WaitGroup
	infos := make([]Info, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { infos[i], errs[i] = s.Ensure(context.Background(), diffID, "", counted) })
	}
	waitFor(t, "all callers to wait", func() bool { return s.waiters(diffID) == n })
	close(release)
	wg.Wait()
	if calls.Load() != 1 {
		t.Errorf("fill ran %d times", calls.Load())
	}
	for i := range n {
		if errs[i] != nil || infos[i] != infos[0] {
			t.Errorf("caller %d: %+v, %v", i, infos[i], errs[i])
		}
	}
	if got := s.refs(diffID); got != n {
		t.Fatalf("refs = %d, want %d", got, n)
	}
	for range n - 1 {
		if err := s.Release(diffID); err != nil {
			t.Fatal(err)
		}
	}
	if s.DiffDir(diffID) == "" {
		t.Fatal("layer removed while still referenced")
	}
	if err := s.Release(diffID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(diffID); ok || s.DiffDir(diffID) != "" {
		t.Error("layer still known after its last reference")
	}
	if top, tmp := storeNames(t, s); !slices.Equal(top, []string{tmpDirName}) || len(tmp) != 0 {
		t.Errorf("after release store holds %v, tmp %v", top, tmp)
	}
}

func TestEnsureFillFailureLeavesNothing(t *testing.T) {
	s := openStore(t)
	diffID, good := fillWith(t, reg("f", "x"))
	boom := errors.New("boom")
	release := make(chan struct{})
	bad := func(ctx context.Context, dir string) (Info, error) {
		if err := os.WriteFile(filepath.Join(dir, "partial"), []byte("half"), 0o644); err != nil {
			return Info{}, err
		}
		<-release
		return Info{}, boom
	}
	const n = 3
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.Ensure(context.Background(), diffID, "", bad)
			errs <- err
		}()
	}
	waitFor(t, "all callers to wait", func() bool { return s.waiters(diffID) == n })
	close(release)
	for range n {
		if err := <-errs; !errors.Is(err, boom) {
			t.Errorf("err = %v, want boom", err)
		}
	}
	if top, tmp := storeNames(t, s); !slices.Equal(top, []string{tmpDirName}) || len(tmp) != 0 {
		t.Errorf("failed fill left %v, tmp %v", top, tmp)
	}
	if _, ok := s.Get(diffID); ok {
		t.Error("failed layer is known")
	}
	// A retry starts from scratch and succeeds.
	if _, err := s.Ensure(context.Background(), diffID, "", good); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(s.DiffDir(diffID), "partial")); !os.IsNotExist(err) {
		t.Error("retry sees the failed fill's files")
	}
}

func TestEnsureRejectsBadInput(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	diffID, fill := fillWith(t, reg("f", "x"))
	called := false
	spy := func(ctx context.Context, dir string) (Info, error) { called = true; return fill(ctx, dir) }
	for name, tc := range map[string]struct{ chain, parent digest.Digest }{
		"empty chain":     {"", ""},
		"no algorithm":    {digest.Digest(diffID.Encoded()), ""},
		"short hex":       {"sha256:abc", ""},
		"upper hex":       {digest.Digest("sha256:" + strings.ToUpper(diffID.Encoded())), ""},
		"path in hex":     {"sha256:../../../../etc", ""},
		"bad parent":      {diffID, "sha256:zz"},
		"unknown algo":    {digest.Digest("md5:" + diffID.Encoded()[:32]), ""},
		"slash in parent": {diffID, "sha256/x"},
	} {
		if _, err := s.Ensure(ctx, tc.chain, tc.parent, spy); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want InvalidArgument", name, err)
		}
	}
	if called {
		t.Error("fill ran for an invalid request")
	}
	if _, err := s.Ensure(ctx, diffID, "", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil fill: err = %v", err)
	}

	noDiffID := func(ctx context.Context, dir string) (Info, error) { return Info{Size: 1}, nil }
	if _, err := s.Ensure(ctx, diffID, "", noDiffID); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("fill without DiffID: err = %v, want InvalidArgument", err)
	}
	// Content whose diff ID does not produce the requested chain ID.
	other, otherFill := fillWith(t, reg("g", "y"))
	if _, err := s.Ensure(ctx, diffID, "", otherFill); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("mismatched diff ID: err = %v, want DataLoss", err)
	}
	if _, err := s.Ensure(ctx, ChainID(diffID, other), other, otherFill); !errors.Is(err, errdefs.ErrDataLoss) {
		t.Errorf("wrong parent: err = %v, want DataLoss", err)
	}
	if top, tmp := storeNames(t, s); !slices.Equal(top, []string{tmpDirName}) || len(tmp) != 0 {
		t.Errorf("rejected fills left %v, tmp %v", top, tmp)
	}
}

func TestEnsureWaiterCancelKeepsFill(t *testing.T) {
	s := openStore(t)
	diffID, fill := fillWith(t, reg("f", "x"))
	release := make(chan struct{})
	fillCtxErr := make(chan error, 1)
	slow := func(ctx context.Context, dir string) (Info, error) {
		<-release
		fillCtxErr <- ctx.Err()
		return fill(ctx, dir)
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() { _, err := s.Ensure(ctxA, diffID, "", slow); errA <- err }()
	waitFor(t, "A to wait", func() bool { return s.waiters(diffID) == 1 })
	resB := make(chan error, 1)
	go func() { _, err := s.Ensure(context.Background(), diffID, "", slow); resB <- err }()
	waitFor(t, "B to wait", func() bool { return s.waiters(diffID) == 2 })

	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("A: err = %v, want Canceled", err)
	}
	close(release)
	if err := <-fillCtxErr; err != nil {
		t.Errorf("fill was cancelled although B still waits: %v", err)
	}
	if err := <-resB; err != nil {
		t.Fatalf("B: %v", err)
	}
	if got := s.refs(diffID); got != 1 {
		t.Errorf("refs = %d, want 1 (only B holds it)", got)
	}
}

func TestEnsureAllWaitersGoneCancelsFill(t *testing.T) {
	s := openStore(t)
	diffID, fill := fillWith(t, reg("marker", "second"))
	sawCancel := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan struct{})
	// The first fill notices cancellation but, like a careless FillFunc,
	// goes on and reports success afterwards.
	stubborn := func(ctx context.Context, dir string) (Info, error) {
		<-ctx.Done()
		close(sawCancel)
		<-release
		os.WriteFile(filepath.Join(dir, "marker"), []byte("first"), 0o644)
		close(firstDone)
		return Info{DiffID: diffID}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := s.Ensure(ctx, diffID, "", stubborn); errc <- err }()
	waitFor(t, "the caller to wait", func() bool { return s.waiters(diffID) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
	<-sawCancel

	// A newcomer waits for the abandoned fill to end, then fills anew.
	second := func(ctx context.Context, dir string) (Info, error) {
		select {
		case <-firstDone:
		default:
			t.Error("a second fill started while the abandoned one runs")
		}
		return fill(ctx, dir)
	}
	waiting := &doneSpy{Context: context.Background(), called: make(chan struct{})}
	res := make(chan error, 1)
	go func() { _, err := s.Ensure(waiting, diffID, "", second); res <- err }()
	<-waiting.called // the newcomer is waiting
	close(release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(s.DiffDir(diffID), "marker")); got != "second" {
		t.Errorf("committed content is from the %s fill", got)
	}
	if _, tmp := storeNames(t, s); len(tmp) != 0 {
		t.Errorf("tmp holds %v", tmp)
	}
}

func TestOpenRemovesLeftovers(t *testing.T) {
	s := openStore(t)
	diffID, fill := fillWith(t, reg("f", "x"))
	if _, err := s.Ensure(context.Background(), diffID, "", fill); err != nil {
		t.Fatal(err)
	}
	other := digest.FromString("other")
	write := func(rel, content string) {
		p := filepath.Join(s.dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("tmp/fill-123/diff/half", "x")                             // interrupted unpack
	write("tmp/rm-abc/diff/old", "x")                                // interrupted removal
	write(digest.FromString("a").Encoded()+"/diff/f", "no record")   // crash before the record
	write(digest.FromString("b").Encoded()+"/layer.json", "{broken") // unreadable record
	write(digest.FromString("c").Encoded()+"/layer.json", fmt.Sprintf(`{"chainID":%q,"diffID":%q}`, other, other))
	write(other.Encoded()+"/layer.json", fmt.Sprintf(`{"chainID":%q,"diffID":%q}`, other, other)) // no diff/
	write("stray-file", "x")

	s2, err := Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	top, tmp := storeNames(t, s2)
	if want := []string{diffID.Encoded(), tmpDirName}; !slices.Equal(top, want) || len(tmp) != 0 {
		t.Errorf("after Open: %v, tmp %v; want %v", top, tmp, want)
	}
	if _, ok := s2.Get(diffID); !ok {
		t.Fatal("committed layer lost")
	}
	if _, ok := s2.Get(other); ok {
		t.Error("layer without diff/ loaded")
	}
	// Loaded layers hold no references until someone acquires them.
	if err := s2.Release(diffID); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Release of an unheld layer: %v, want FailedPrecondition", err)
	}
}

func TestReleaseAndPrune(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	a, fillA := fillWith(t, reg("a", "a"))
	b, fillB := fillWith(t, reg("b", "b"))
	c, fillC := fillWith(t, reg("c", "c"))
	for _, l := range []struct {
		id   digest.Digest
		fill FillFunc
	}{{a, fillA}, {b, fillB}, {c, fillC}} {
		if _, err := s.Ensure(ctx, l.id, "", l.fill); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.Acquire(a); !ok {
		t.Fatal("Acquire failed")
	}
	if _, ok := s.Acquire(digest.FromString("absent")); ok {
		t.Error("Acquire of an absent layer succeeded")
	}
	err := s.Release(a, b, digest.FromString("absent"), "garbage")
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("err = %v, want NotFound for the absent ones", err)
	}
	if _, ok := s.Get(b); ok {
		t.Error("b kept without references")
	}
	if s.refs(a) != 1 {
		t.Errorf("a refs = %d, want 1", s.refs(a))
	}

	// A restart: references are gone until holders re-acquire.
	s2, err := Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Acquire(a); !ok {
		t.Fatal("re-acquire failed")
	}
	if err := s2.Prune(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Get(c); ok {
		t.Error("Prune kept unreferenced c")
	}
	if _, ok := s2.Get(a); !ok {
		t.Error("Prune removed referenced a")
	}
	if top, tmp := storeNames(t, s2); !slices.Equal(top, []string{a.Encoded(), tmpDirName}) || len(tmp) != 0 {
		t.Errorf("after Prune: %v, tmp %v", top, tmp)
	}
}

func TestUsage(t *testing.T) {
	s := openStore(t)
	b0, i0, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if i0 != 2 { // the store dir and tmp/
		t.Errorf("empty store inodes = %d, want 2", i0)
	}
	body := strings.Repeat("x", 100<<10)
	diffID, fill := fillWith(t, reg("big", body), linkEnt("big2", "big"))
	if _, err := s.Ensure(context.Background(), diffID, "", fill); err != nil {
		t.Fatal(err)
	}
	b1, i1, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	// layer dir, layer.json, diff/, and big with its second name counted once.
	if i1 != i0+4 {
		t.Errorf("inodes = %d, want %d", i1, i0+4)
	}
	if b1 < b0+uint64(len(body)) || b1 > b0+uint64(len(body))+64<<10 {
		t.Errorf("bytes = %d, want about %d", b1, b0+uint64(len(body)))
	}
	// Cached: a change behind the store's back is not seen...
	if err := os.WriteFile(filepath.Join(s.dir, tmpDirName, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, i, _ := s.Usage(); b != b1 || i != i1 {
		t.Errorf("second call walked again: %d/%d", b, i)
	}
	// ...until a layer goes.
	if err := s.Release(diffID); err != nil {
		t.Fatal(err)
	}
	if b, i, _ := s.Usage(); i != i0+1 || b >= b1 {
		t.Errorf("after release: %d bytes, %d inodes; want %d inodes", b, i, i0+1)
	}
}

func TestChainID(t *testing.T) {
	d1 := digest.FromString("layer1")
	d2 := digest.FromString("layer2")
	d3 := digest.FromString("layer3")
	if ChainID("", d1) != d1 {
		t.Error("base chain ID is not the diff ID")
	}
	sum := sha256.Sum256([]byte(d1.String() + " " + d2.String()))
	c2 := digest.Digest(fmt.Sprintf("sha256:%x", sum))
	if got := ChainID(d1, d2); got != c2 {
		t.Errorf("ChainID = %s, want %s", got, c2)
	}
	sum = sha256.Sum256([]byte(c2.String() + " " + d3.String()))
	c3 := digest.Digest(fmt.Sprintf("sha256:%x", sum))
	if got := ChainIDs([]digest.Digest{d1, d2, d3}); !slices.Equal(got, []digest.Digest{d1, c2, c3}) {
		t.Errorf("ChainIDs = %v", got)
	}
	if ChainIDs(nil) != nil {
		t.Error("ChainIDs(nil) != nil")
	}
}

// doneSpy reports the first time someone waits on it.
type doneSpy struct {
	context.Context
	once   sync.Once
	called chan struct{}
}

func (d *doneSpy) Done() <-chan struct{} {
	d.once.Do(func() { close(d.called) })
	return d.Context.Done()
}

// A layer the applier rejects fails Ensure with InvalidArgument and leaves
// nothing behind: no chain ID directory, no temp dir, nothing outside.
func TestEnsureRejectedLayerLeavesNothing(t *testing.T) {
	s := openStore(t)
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("root"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)
	// Something for the hostile layers to stack on.
	base := ensureStack(t, s, []tent{dirEnt("etc"), reg("etc/passwd", "root"), symEnt("link", outside)})[0]
	for _, tc := range escapeCases(outside) {
		t.Run(tc.name, func(t *testing.T) {
			// Valid content first, so the failure strikes mid-unpack.
			ents := append([]tent{reg("usr/bin/app", "app"), dirEnt("var")}, tc.ents...)
			diffID, fill := fillWith(t, ents...)
			chain := ChainID(base, diffID)
			_, err := s.Ensure(context.Background(), chain, base, fill)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"`+tc.entry+`"`) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tc.entry)
			}
			if _, ok := s.Get(chain); ok || s.DiffDir(chain) != "" {
				t.Error("rejected layer is known")
			}
			top, tmp := storeNames(t, s)
			if want := []string{base.Encoded(), tmpDirName}; !slices.Equal(top, want) || len(tmp) != 0 {
				t.Errorf("store holds %v, tmp %v; want %v and nothing", top, tmp, want)
			}
			if d := diffSnapshots(before, snapshot(t, outside)); d != "" {
				t.Errorf("outside the store changed:\n%s", d)
			}
		})
	}
	if got := readFile(t, filepath.Join(s.DiffDir(base), "etc/passwd")); got != "root" {
		t.Errorf("the base layer changed: etc/passwd = %q", got)
	}
}
