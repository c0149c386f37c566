package image

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The stall watchdog watches every byte of a pull, not only layer bytes: a
// large config (or manifest) that arrives slowly but steadily is progress,
// and one that stops arriving is a stall.
func TestStallTimeoutCoversManifestsAndConfig(t *testing.T) {
	const timeout = 300 * time.Millisecond
	e := newEnv(t, func(c *Config) { c.StallTimeout = timeout })
	r := testkit.NewRegistry(t)
	// ~48 KiB of config: at 16 KiB/s it takes ~3 s, ten stall timeouts.
	src := testkit.MustImage(t, testkit.ImageConfig{Labels: map[string]string{"big": strings.Repeat("x", 48<<10)}},
		testkit.MustLayer(t, []testkit.Entry{testkit.File("f", "x")}, testkit.Gzip))
	r.MustPush(t, "app:latest", src)
	cfg := configDigest(t, src).Hex

	r.SetFault(testkit.StallBlob(cfg, 1024, nil))
	start := time.Now()
	_, err := e.svc.Pull(context.Background(), r.Ref("app"), nil, nil)
	wantKind(t, err, errdefs.ErrDeadlineExceeded)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to notice a stalled config", d)
	}
	e.assertEmpty()

	r.SetFault(testkit.SlowBlob(cfg, 16<<10))
	start = time.Now()
	img := e.pull(r.Ref("app"))
	if d := time.Since(start); d < 4*timeout {
		t.Errorf("the slow config took only %s; the test proves nothing", d)
	}
	if img.Config.Config.Labels["big"] == "" {
		t.Error("config not recorded")
	}
}

// A pull waiting for a layer that another pull has queued behind its own
// downloads (max_concurrent_downloads) is waiting on a queue that moves: it
// must not be cancelled as stalled while the other pull makes progress.
func TestStallTimeoutSparesPullsQueuedBehindAnother(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := testkit.NewRegistry(t)
	base := testkit.MustRandomLayer(t, 64<<10, 21, testkit.Gzip)
	layersB := []v1.Layer{base}
	var slow []testkit.Fault
	for i := range 5 {
		l := testkit.MustRandomLayer(t, 16<<10, int64(30+i), testkit.Uncompressed)
		layersB = append(layersB, l)
		// ~0.5 s each, in steady steps: the base waits longer than the
		// stall timeout for B's only download slot.
		slow = append(slow, testkit.SlowBlob(digestOf(t, l).Hex, 32<<10))
	}
	imgB := testkit.MustImage(t, testkit.ImageConfig{}, layersB...)
	imgA := testkit.MustImage(t, testkit.ImageConfig{}, base, testkit.MustLayer(t, []testkit.Entry{testkit.File("a", "a")}, testkit.Gzip))
	r.MustPush(t, "b:latest", imgB)
	r.MustPush(t, "a:latest", imgA)
	r.SetFault(testkit.Chain(slow...))
	baseBlob := "/blobs/" + digestOf(t, base).String()
	cfgB := configDigest(t, imgB).String()

	// B's layers race for its one slot; the case needs the base to lose.
	for attempt := 1; ; attempt++ {
		e := newEnv(t, func(c *Config) { c.StallTimeout = timeout; c.MaxConcurrentDownloads = 1 })
		r.ResetRequests()
		ctx, cancel := context.WithCancel(context.Background())
		doneB := make(chan error, 1)
		go func() {
			_, err := e.svc.Pull(ctx, r.Ref("b"), nil, nil)
			doneB <- err
		}()
		var first string
		waitFor(t, "B's first layer download", func() bool {
			for _, req := range r.RequestLog() {
				if strings.Contains(req, "/blobs/") && !strings.Contains(req, cfgB) {
					first = req
					return true
				}
			}
			return false
		})
		if strings.HasSuffix(first, baseBlob) {
			cancel()
			<-doneB
			if attempt == 10 {
				t.Fatal("B fetched its base layer first ten times")
			}
			continue
		}
		img, err := e.svc.Pull(context.Background(), r.Ref("a"), nil, nil)
		if err != nil {
			t.Fatalf("A, waiting for the base layer queued in B (which is moving), failed: %v", err)
		}
		if len(img.ChainIDs) != 2 {
			t.Errorf("A's chain %v", img.ChainIDs)
		}
		if n := r.Requests(baseBlob); n != 1 {
			t.Errorf("base downloaded %d times", n)
		}
		if err := <-doneB; err != nil {
			t.Fatal(err)
		}
		cancel()
		return
	}
}
