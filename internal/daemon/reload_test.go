package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cradle-runtime/cradle/internal/config"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func reloaderFor(t *testing.T, content string, appliers ...Applier) (*reloader, string, *syncBuf) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "cradle.toml")
	write(t, file, content)
	load := func() (*config.Loaded, error) { return config.Load(file, config.Overrides{}) }
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	return newReloader(cfg, load, slog.New(slog.NewTextHandler(logs, nil)), appliers...), file, logs
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const base = "root = \"/r\"\nstate = \"/s\"\nsocket = \"/s/c.sock\"\n"

// A file that does not validate changes nothing, and the log names the
// file, the line, the key and the reason.
func TestReloadOfABadFileKeepsEverything(t *testing.T) {
	applied := 0
	r, file, logs := reloaderFor(t, base+"log_level = \"info\"\n",
		simpleApplier("count", func(*config.Loaded) { applied++ }))
	before := r.current()
	write(t, file, base+"log_level = \"debug\"\n[registry]\nmax_concurrent_downloads = 0\n")
	got, err := r.reload(context.Background())
	if err == nil {
		t.Fatal("a bad file was applied")
	}
	if got != before || r.current() != before || applied != 0 {
		t.Fatalf("configuration changed by a bad file (applied %d)", applied)
	}
	for _, want := range []string{file + ":6", "registry.max_concurrent_downloads", "between 1 and 64", "unchanged"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// A syntax error likewise.
	write(t, file, base+"[registry\n")
	if _, err := r.reload(context.Background()); err == nil || r.current() != before {
		t.Fatal("a file with a syntax error was applied")
	}
	if !strings.Contains(logs.String(), file+":4") {
		t.Errorf("syntax error without its line:\n%s", logs.String())
	}
}

// Restart-only keys keep their values and are named; the rest applies.
func TestReloadKeepsRestartOnlyKeys(t *testing.T) {
	var seen *config.Loaded
	r, file, logs := reloaderFor(t, base, simpleApplier("see", func(next *config.Loaded) { seen = next }))
	write(t, file, "root = \"/elsewhere\"\nstate = \"/s\"\nsocket = \"/s/c.sock\"\nlog_level = \"warn\"\nlog_format = \"json\"\n"+
		"[stream]\nport = 1234\nurl_ttl = \"10s\"\n[runtime]\npod_shm_size = 2097152\n[cni]\ncall_timeout = \"1m\"\n")
	got, err := r.reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Root != "/r" || got.Stream.Port != 0 || got.LogFormat != "text" || got.CNI.CallTimeout.Std() != config.Default().CNI.CallTimeout.Std() {
		t.Errorf("restart-only keys changed: %+v", got.Config)
	}
	if got.LogLevel != "warn" || got.Stream.URLTTL.Std().String() != "10s" || got.Runtime.PodShmSize != 2<<20 {
		t.Errorf("reloadable keys not applied: %+v", got.Config)
	}
	if seen != got || r.current() != got {
		t.Error("the appliers did not see the configuration put in force")
	}
	if !strings.Contains(logs.String(), "keys=\"[cni.call_timeout log_format root stream.port]\"") {
		t.Errorf("warning does not name the restart-only keys:\n%s", logs.String())
	}
}

// When one section cannot apply, the ones prepared before it are aborted,
// none is committed and the old configuration stays.
func TestReloadIsAllOrNothing(t *testing.T) {
	var events []string
	step := func(name string, fail bool) Applier {
		return Applier{Section: name, Prepare: func(context.Context, *config.Loaded, *config.Loaded) (func(), func(), error) {
			events = append(events, "prepare "+name)
			if fail {
				return nil, nil, errors.New("cannot")
			}
			return func() { events = append(events, "commit "+name) }, func() { events = append(events, "abort "+name) }, nil
		}}
	}
	r, file, logs := reloaderFor(t, base, step("a", false), step("b", false), step("c", true))
	before := r.current()
	write(t, file, base+"log_level = \"debug\"\n")
	if _, err := r.reload(context.Background()); err == nil || !strings.Contains(err.Error(), "[c]") {
		t.Fatalf("err = %v", err)
	}
	if want := "prepare a,prepare b,prepare c,abort b,abort a"; strings.Join(events, ",") != want {
		t.Errorf("events = %v, want %s", events, want)
	}
	if r.current() != before || !strings.Contains(logs.String(), "section=c") {
		t.Errorf("failed reload changed the configuration or was not logged:\n%s", logs.String())
	}
}

// Reloads and readers of the configuration in force run concurrently
// without a race (go test -race).
func TestReloadWhileReading(t *testing.T) {
	var level slog.LevelVar
	r, file, _ := reloaderFor(t, base, simpleApplier("log_level", func(next *config.Loaded) { setLevel(&level, next.LogLevel) }))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_ = r.current().Runtime.PodShmSize
				_ = level.Level()
			}
		})
	}
	for i := range 20 {
		lvl := []string{"debug", "info"}[i%2]
		write(t, file, base+"log_level = \""+lvl+"\"\n")
		if got, err := r.reload(context.Background()); err != nil || got.LogLevel != lvl {
			t.Fatalf("reload %d: %v %v", i, got.LogLevel, err)
		}
	}
	cancel()
	wg.Wait()
	if level.Level() != slog.LevelInfo {
		t.Errorf("level = %v after the last reload", level.Level())
	}
}
