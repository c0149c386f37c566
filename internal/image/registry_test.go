package image

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cradle-runtime/cradle/internal/testkit"
)

// A reload's [registry] settings reach the next pull: a new hosts.toml
// directory, concurrency and stall timeout, while pulls run (go test
// -race).
func TestSetRegistryAppliesToTheNextPull(t *testing.T) {
	e := newEnv(t)
	reg := testkit.NewRegistry(t)
	reg.MustPush(t, "library/app:v1", smallImage(t, "reload", testkit.Gzip))
	reg.MustPush(t, "library/app:v2", smallImage(t, "reload2", testkit.Gzip))
	dead := deadHost(t)

	// Another directory, where the registry is mirrored by a dead host
	// only (no fallback to it): pulls fail there.
	other := filepath.Join(e.root, "other.d")
	writeFile(t, filepath.Join(other, reg.Host, "hosts.toml"), fmt.Sprintf("server = \"http://%s\"\n", dead))

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 20 {
				_ = e.svc.registry()
			}
		})
	}
	if err := e.svc.SetRegistry(other, 2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if r := e.svc.registry(); r.maxConcurrent != 2 || r.stall != 30*time.Second || r.hosts.dir != other {
		t.Errorf("settings in force: %+v", r)
	}
	_, err := e.svc.Pull(context.Background(), reg.Ref("library/app:v1"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), dead) {
		t.Fatalf("pull through the new hosts.toml directory: %v (want a failure naming %s)", err, dead)
	}
	if err := e.svc.SetRegistry(e.cfg.RegistryConfigPath, 0, 0); err != nil {
		t.Fatal(err)
	}
	if r := e.svc.registry(); r.maxConcurrent != DefaultMaxConcurrentDownloads || r.stall != 0 {
		t.Errorf("defaults not applied: %+v", r)
	}
	e.pull(reg.Ref("library/app:v2"))
	if err := e.svc.SetRegistry(other, 1, -time.Second); err == nil {
		t.Error("a negative stall timeout was accepted")
	}
}
