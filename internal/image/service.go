// Package image owns <root>/images: image records (tags, digests, config) and
// pulling from registries (references, hosts.toml mirrors, auth, parallel
// verified layer download straight into the layer store).
package image

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Defaults for the configuration keys; config.Config applies them.
const (
	DefaultMaxConcurrentDownloads = 6
	DefaultStallTimeout           = time.Minute
)

// MinIDPrefix is the shortest hex ID prefix Get accepts: shorter ones match
// too many images to be what anyone meant.
const MinIDPrefix = 3

// Config configures the image service; config.Config fills it from TOML.
type Config struct {
	Dir                string // <root>/images
	RegistryConfigPath string // hosts.toml directory (containerd layout)
	// MaxConcurrentDownloads bounds layer downloads of one pull; <= 0 means
	// DefaultMaxConcurrentDownloads.
	MaxConcurrentDownloads int
	// StallTimeout cancels a pull that made no progress (no byte received) for
	// this long. A slow but moving pull is never cancelled. 0 disables it.
	StallTimeout time.Duration
	// Platform selects from manifest lists; zero value = host (linux/runtime.GOARCH).
	Platform ocispec.Platform
	// Observer, if set, hears of pulls (metrics).
	Observer Observer
}

// Observer hears what pulls do. Its methods are called from the pull's
// goroutines and must return at once.
type Observer interface {
	// PullDone is called once per pull (a download shared by every caller
	// of one reference) with "success", "failure" or "cancelled" (every
	// caller gave up, or the service closed).
	PullDone(result string, took time.Duration)
	// PullBytes counts compressed layer bytes received.
	PullBytes(n int)
	// LayerReused counts a layer a pull did not download itself: it was
	// in the store, or another pull was unpacking it.
	LayerReused()
}

type noObserver struct{}

func (noObserver) PullDone(string, time.Duration) {}
func (noObserver) PullBytes(int)                  {}
func (noObserver) LayerReused()                   {}

// Auth is the CRI AuthConfig in domain form.
type Auth struct {
	Username, Password string
	Auth               string // base64(user:password)
	ServerAddress      string
	IdentityToken      string
	RegistryToken      string
}

// Image is one image record. ID is the config digest and is the image_ref
// returned by Pull and the id in every listing. Config is shared between the
// copies the service hands out: treat it as read-only.
type Image struct {
	ID       digest.Digest `json:"id"`
	RepoTags []string      `json:"repoTags"` // docker.io/library/busybox:latest
	// RepoDigests holds name@<digest the reference resolved to>: the index's
	// digest when the image came through an index, as containerd records it
	// and kubelet and critest compare it.
	RepoDigests []string `json:"repoDigests"`
	// Size is the sum of the compressed layer sizes and the config size: what
	// the registry transfers, as containerd reports it.
	Size     int64           `json:"size"`
	Config   ocispec.Image   `json:"config"`   // parsed image config (user, env, cmd, ...)
	ChainIDs []digest.Digest `json:"chainIDs"` // layers bottom to top, in the layer store
	Pinned   bool            `json:"pinned,omitempty"`
	PulledAt time.Time       `json:"pulledAt"`
	// ManifestDigest/ManifestMediaType describe the platform manifest pulled.
	ManifestDigest    digest.Digest `json:"manifestDigest"`
	ManifestMediaType string        `json:"manifestMediaType"`
}

// Progress is reported during a pull (for the CLI's progress display).
type Progress struct {
	Ref        string
	Layers     int
	LayersDone int
	Total      int64 // compressed bytes of all layers
	Done       int64
}

// Service is the image service. Safe for concurrent use.
type Service struct {
	cfg    Config // Dir and Platform; the registry settings live in reg
	layers *layer.Store
	// reg is swapped whole by SetRegistry; a pull reads it once at its
	// start and keeps those settings to its end.
	reg    atomic.Pointer[registrySettings]
	db     *bolt.DB
	dbPath string
	log    *slog.Logger

	mu  sync.RWMutex // guards idx; held across a record's DB write
	idx *index

	watchers layerWatchers

	fmu     sync.Mutex // guards flights, closed
	flights map[string]*flight
	closed  bool
	wg      sync.WaitGroup
}

// New opens the image store, re-acquires its layers in ls, and returns the
// service. A record whose layers are not all in ls (a crash, a manual
// deletion) is dropped with a warning, never served half. The caller runs
// ls.Prune() afterwards.
func New(cfg Config, ls *layer.Store) (*Service, error) {
	if cfg.Dir == "" {
		return nil, errdefs.InvalidArgument("image service: Dir is not set")
	}
	if ls == nil {
		return nil, errdefs.InvalidArgument("image service: no layer store")
	}
	if cfg.MaxConcurrentDownloads <= 0 {
		cfg.MaxConcurrentDownloads = DefaultMaxConcurrentDownloads
	}
	if cfg.StallTimeout < 0 {
		return nil, errdefs.InvalidArgument("image service: negative stall timeout %s", cfg.StallTimeout)
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("image service: %w", err)
	}
	s := &Service{
		cfg:     cfg,
		layers:  ls,
		dbPath:  filepath.Join(cfg.Dir, "images.db"),
		log:     slog.Default().With("component", "image"),
		idx:     newIndex(),
		flights: map[string]*flight{},
	}
	s.reg.Store(&registrySettings{hosts: NewHosts(cfg.RegistryConfigPath), maxConcurrent: cfg.MaxConcurrentDownloads, stall: cfg.StallTimeout})
	err := s.openAndLoad()
	if err != nil && errors.Is(err, errCorrupt) {
		aside, rerr := setAside(s.dbPath)
		if rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		s.log.Error("image database is damaged: set aside, starting with no images (pull them again)",
			"file", s.dbPath, "moved_to", aside, "err", err)
		s.idx = newIndex()
		err = s.openAndLoad()
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// openAndLoad opens the database, checks it and loads its records. An
// unreadable file is errCorrupt; nothing it held is acquired then.
func (s *Service) openAndLoad() error {
	// bbolt would take an empty file for a new database. Nothing makes one
	// but a truncation (or a crash before the first start wrote it): its
	// records are lost, and that deserves the same report.
	if fi, err := os.Stat(s.dbPath); err == nil && fi.Size() == 0 {
		return fmt.Errorf("%w: %s is empty", errCorrupt, s.dbPath)
	}
	var db *bolt.DB
	err := guarded(func() (err error) {
		db, err = openBolt(s.dbPath)
		return err
	})
	if err != nil {
		if corruptOpenError(err) && !errors.Is(err, errCorrupt) {
			return fmt.Errorf("%w: %w", errCorrupt, err)
		}
		return err
	}
	// Checked before anything is written, so a damaged file is set aside
	// as it was found. Past the check the pages are sound: a panic from
	// here on is a bug of ours, never a reason to set the data aside.
	if err := checkDB(db, s.dbPath); err != nil {
		_ = guarded(db.Close)
		return fmt.Errorf("image database %s: %w", s.dbPath, err)
	}
	if err := initSchema(db, s.dbPath); err != nil {
		db.Close()
		return err
	}
	s.db = db
	if err := s.load(); err != nil {
		s.releaseAll()
		db.Close()
		s.db = nil
		return err
	}
	return nil
}

// releaseAll gives back the layers of every image loaded so far.
func (s *Service) releaseAll() {
	for id, img := range s.idx.byID {
		s.release(img.ChainIDs)
		s.idx.del(id)
	}
}

func (s *Service) load() error {
	imgs, bad, err := loadRecords(s.db)
	if err != nil {
		return fmt.Errorf("read image database %s: %w", s.dbPath, err)
	}
	for _, k := range bad {
		s.log.Warn("dropping undecodable image record", "id", k)
	}
	// Older records first, so that if two ever claimed one tag the newer wins.
	slices.SortFunc(imgs, func(a, b *Image) int { return a.PulledAt.Compare(b.PulledAt) })
	for _, img := range imgs {
		var held []digest.Digest
		var missing digest.Digest
		for _, c := range img.ChainIDs {
			if _, ok := s.layers.Acquire(c); !ok {
				missing = c
				break
			}
			held = append(held, c)
		}
		if missing != "" {
			s.log.Warn("dropping image whose layer is missing", "id", img.ID, "tags", img.RepoTags, "layer", missing)
			s.release(held)
			bad = append(bad, img.ID.String())
			continue
		}
		s.idx.put(img)
	}
	if len(bad) > 0 {
		if err := deleteKeys(s.db, bad); err != nil {
			return fmt.Errorf("drop broken image records: %w", err)
		}
	}
	return nil
}

// Close cancels pulls in progress, waits for them to clean up, and closes
// the database.
func (s *Service) Close() error {
	s.fmu.Lock()
	if s.closed {
		s.fmu.Unlock()
		return nil
	}
	s.closed = true
	for _, f := range s.flights {
		f.cancel()
	}
	s.fmu.Unlock()
	s.wg.Wait()
	s.reg.Load().hosts.Close()
	return s.db.Close()
}

// FsUsage reports bytes and inodes used by images (layers and records).
func (s *Service) FsUsage() (bytes, inodes uint64, err error) {
	bytes, inodes, err = s.layers.Usage()
	if err != nil {
		return 0, 0, err
	}
	st, err := os.Stat(s.dbPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return bytes, inodes, nil
		}
		return 0, 0, err
	}
	return bytes + uint64(st.Size()), inodes + 1, nil
}
