package testkit

import (
	"fmt"
	"maps"
	"runtime"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ImageConfig is the part of an image config that tests set. Values are
// written verbatim (no normalisation), so tests can also build odd images.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	User, WorkingDir     string
	StopSignal           string
	Labels               map[string]string
	ExposedPorts         []string // "80/tcp"
	Volumes              []string
	OS                   string // default "linux"
	Architecture         string // default runtime.GOARCH
	Variant              string
}

// NewImage builds an image with OCI media types (manifest, config and the
// layers' own types). Its config has the fixed creation time FixedTime, so
// equal inputs give equal digests.
func NewImage(cfg ImageConfig, layers ...v1.Layer) (v1.Image, error) {
	return newImage(cfg, layers, types.OCIManifestSchema1, types.OCIConfigJSON, false)
}

// NewDockerImage builds an image with Docker schema 2 media types. Gzip and
// uncompressed layers are re-labelled with the Docker layer types; zstd
// layers keep the OCI zstd type, which Docker schema 2 lacks.
func NewDockerImage(cfg ImageConfig, layers ...v1.Layer) (v1.Image, error) {
	return newImage(cfg, layers, types.DockerManifestSchema2, types.DockerConfigJSON, true)
}

// BusyboxImage is a one-layer gzip busybox image; Cmd defaults to ["sh"].
func BusyboxImage(cfg ImageConfig) (v1.Image, error) {
	l, err := BusyboxLayer(Gzip)
	if err != nil {
		return nil, err
	}
	if len(cfg.Entrypoint) == 0 && len(cfg.Cmd) == 0 {
		cfg.Cmd = []string{"sh"}
	}
	return NewImage(cfg, l)
}

func newImage(cfg ImageConfig, layers []v1.Layer, manifestType, configType types.MediaType, docker bool) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, manifestType), configType)
	adds := make([]mutate.Addendum, 0, len(layers))
	for i, l := range layers {
		if l == nil {
			return nil, errdefs.InvalidArgument("testkit: layer %d is nil", i)
		}
		if docker {
			var err error
			if l, err = dockerLayer(l); err != nil {
				return nil, err
			}
		}
		adds = append(adds, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: FixedTime}, CreatedBy: fmt.Sprintf("testkit layer %d", i)},
		})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("testkit: append layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("testkit: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: FixedTime}
	cf.OS = cfg.OS
	if cf.OS == "" {
		cf.OS = "linux"
	}
	cf.Architecture = cfg.Architecture
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.Variant = cfg.Variant
	cf.Config = v1.Config{
		Entrypoint:   cfg.Entrypoint,
		Cmd:          cfg.Cmd,
		Env:          cfg.Env,
		User:         cfg.User,
		WorkingDir:   cfg.WorkingDir,
		StopSignal:   cfg.StopSignal,
		Labels:       maps.Clone(cfg.Labels),
		ExposedPorts: set(cfg.ExposedPorts),
		Volumes:      set(cfg.Volumes),
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("testkit: set config: %w", err)
	}
	return img, nil
}

func set(keys []string) map[string]struct{} {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

// relabelled overrides the media type of a layer built elsewhere.
type relabelled struct {
	v1.Layer
	mt types.MediaType
}

func (l relabelled) MediaType() (types.MediaType, error) { return l.mt, nil }

func dockerLayer(l v1.Layer) (v1.Layer, error) {
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	var docker types.MediaType
	switch mt {
	case types.OCILayer:
		docker = types.DockerLayer
	case types.OCIUncompressedLayer:
		docker = types.DockerUncompressedLayer
	default:
		return l, nil
	}
	if m, ok := l.(*memLayer); ok {
		return m.withMediaType(docker), nil
	}
	return relabelled{Layer: l, mt: docker}, nil
}

// NewIndex builds an OCI image index of images, each entry's platform taken
// from the image's config.
func NewIndex(images ...v1.Image) (v1.ImageIndex, error) {
	return newIndex(types.OCIImageIndex, images)
}

// NewDockerManifestList is NewIndex with the Docker manifest list media type.
func NewDockerManifestList(images ...v1.Image) (v1.ImageIndex, error) {
	return newIndex(types.DockerManifestList, images)
}

func newIndex(mt types.MediaType, images []v1.Image) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for i, img := range images {
		if img == nil {
			return nil, errdefs.InvalidArgument("testkit: image %d is nil", i)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("testkit: image %d config: %w", i, err)
		}
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{
				OS:           cf.OS,
				Architecture: cf.Architecture,
				Variant:      cf.Variant,
				OSVersion:    cf.OSVersion,
			}},
		})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), mt)
	// Compute now so a broken image fails here rather than at push time.
	if _, err := idx.Digest(); err != nil {
		return nil, fmt.Errorf("testkit: index: %w", err)
	}
	return idx, nil
}
