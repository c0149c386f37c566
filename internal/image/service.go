// Package image owns <root>/images: image records (tags, digests, config) and
// pulling from registries (references, hosts.toml mirrors, auth, parallel
// verified layer download straight into the layer store).
package image

// API CONTRACT (stub; the implementation replaces the bodies, not the signatures).

import (
	"context"
	"errors"
	"time"

	"github.com/cradle-runtime/cradle/internal/layer"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Config configures the image service; config.Config fills it from TOML.
type Config struct {
	Dir                string // <root>/images
	RegistryConfigPath string // hosts.toml directory (containerd layout)
	// MaxConcurrentDownloads bounds layer downloads of one pull.
	MaxConcurrentDownloads int
	// StallTimeout cancels a pull that made no progress (no byte received) for
	// this long. A slow but moving pull is never cancelled. 0 disables it.
	StallTimeout time.Duration
	// Platform selects from manifest lists; zero value = host (linux/runtime.GOARCH).
	Platform ocispec.Platform
}

// Auth is the CRI AuthConfig in domain form.
type Auth struct {
	Username, Password string
	Auth               string // base64(user:password)
	ServerAddress      string
	IdentityToken      string
	RegistryToken      string
}

// Image is one image record. ID is the config digest and is the image_ref
// returned by Pull and the id in every listing.
type Image struct {
	ID          digest.Digest   `json:"id"`
	RepoTags    []string        `json:"repoTags"`    // docker.io/library/busybox:latest
	RepoDigests []string        `json:"repoDigests"` // docker.io/library/busybox@sha256:<manifest>
	Size        int64           `json:"size"`        // sum of compressed layer sizes + config
	Config      ocispec.Image   `json:"config"`      // parsed image config (user, env, cmd, ...)
	ChainIDs    []digest.Digest `json:"chainIDs"`    // layers bottom to top, in the layer store
	Pinned      bool            `json:"pinned,omitempty"`
	PulledAt    time.Time       `json:"pulledAt"`
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
type Service struct{}

var errStub = errors.New("image service not implemented yet")

// New opens the image store, re-acquires its layers in ls, and returns the service.
func New(cfg Config, ls *layer.Store) (*Service, error) { return nil, errStub }

// Close releases resources (the metadata DB).
func (s *Service) Close() error { return nil }

// Pull pulls ref (normalised like Docker: busybox → docker.io/library/busybox:latest)
// and returns the stored image. Concurrent pulls of one reference do the work once.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth, progress func(Progress)) (Image, error) {
	return Image{}, errStub
}

// Get resolves an image by ID (sha256:..., hex, or unique ID prefix), tag
// reference or digest reference. ok=false when absent.
func (s *Service) Get(ref string) (Image, bool, error) { return Image{}, false, errStub }

// List returns all images; a non-empty filter returns the image it resolves to.
func (s *Service) List(filter string) ([]Image, error) { return nil, errStub }

// Remove removes the image ref resolves to, with every tag, and the layers no
// longer referenced. Removing an absent image succeeds.
func (s *Service) Remove(ref string) error { return errStub }

// FsUsage reports bytes and inodes used by images (layers and records).
func (s *Service) FsUsage() (bytes, inodes uint64, err error) { return 0, 0, errStub }
