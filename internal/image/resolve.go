package image

import (
	"context"
	_ "crypto/sha256" // digest algorithms must be linked in to be Available
	_ "crypto/sha512"
	"encoding/json"
	"mime"
	"runtime"
	"strconv"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSigned1  = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"

	// The distribution spec lets registries refuse manifests over 4 MiB; a
	// config is usually a few KiB, but long histories exist.
	maxManifestSize = 4 << 20
	maxConfigSize   = 32 << 20

	// maxLayers is overlayfs's stacking limit (OVL_MAX_STACK): an image with
	// more layers could never run, and each layer costs a goroutine and an
	// unpack directory during the pull.
	maxLayers = 500
)

var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageIndex, mediaTypeDockerList,
	ocispec.MediaTypeImageManifest, mediaTypeDockerManifest,
	mediaTypeDockerSigned1, mediaTypeDockerSchema1,
}, ", ")

// compression of a layer blob, from its media type; the stream's magic bytes
// have the last word.
type compression int

const (
	compressionNone compression = iota
	compressionGzip
	compressionZstd
)

var layerMediaTypes = map[string]compression{
	ocispec.MediaTypeImageLayer:                                    compressionNone,
	ocispec.MediaTypeImageLayerGzip:                                compressionGzip,
	ocispec.MediaTypeImageLayerZstd:                                compressionZstd,
	"application/vnd.oci.image.layer.nondistributable.v1.tar":      compressionNone,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": compressionGzip,
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": compressionZstd,
	"application/vnd.docker.image.rootfs.diff.tar":                 compressionNone,
	"application/vnd.docker.image.rootfs.diff.tar.gzip":            compressionGzip,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":    compressionGzip,
}

// resolved is everything known about an image before its layers are fetched.
type resolved struct {
	topDigest         digest.Digest // the digest the reference resolved to (an index's, if any)
	manifestDigest    digest.Digest // the platform manifest's
	manifestMediaType string
	manifest          ocispec.Manifest
	configDesc        ocispec.Descriptor
	config            ocispec.Image
	configSize        int64
}

// manifestDoc has the fields of every manifest kind, to tell them apart.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
}

func (r *remote) resolve(ctx context.Context, want ocispec.Platform) (resolved, error) {
	var res resolved
	// Messages name the objects, not the reference: Pull prefixes that.
	data, mt, dgst, err := r.fetchManifest(ctx, r.ref.object(), ocispec.Descriptor{Digest: r.ref.Digest, Size: -1}, "the manifest")
	if err != nil {
		return res, err
	}
	res.topDigest = dgst
	if isIndex(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(data, &idx); err != nil {
			return res, errdefs.InvalidArgument("index %s: %v", dgst, err)
		}
		desc, err := choosePlatform(want, idx.Manifests)
		if err != nil {
			return res, err
		}
		data, mt, dgst, err = r.fetchManifest(ctx, desc.Digest.String(), desc, "platform manifest "+desc.Digest.String())
		if err != nil {
			return res, err
		}
		if isIndex(mt) {
			return res, errdefs.InvalidArgument("index %s: nested image indexes are not supported", res.topDigest)
		}
	}
	res.manifestDigest, res.manifestMediaType = dgst, mt
	if err := json.Unmarshal(data, &res.manifest); err != nil {
		return res, errdefs.InvalidArgument("manifest %s: %v", dgst, err)
	}
	if err := r.fetchConfig(ctx, &res); err != nil {
		return res, err
	}
	return res, nil
}

// fetchManifest gets a manifest and verifies it: against want.Digest when the
// caller knows it, else against the registry's Docker-Content-Digest.
func (r *remote) fetchManifest(ctx context.Context, object string, want ocispec.Descriptor, what string) ([]byte, string, digest.Digest, error) {
	need := CapResolve
	if want.Digest != "" {
		need = CapPull
		if err := want.Digest.Validate(); err != nil {
			return nil, "", "", errdefs.InvalidArgument("%s: invalid digest: %v", what, err)
		}
	}
	resp, err := r.get(ctx, need, "/"+r.ref.Path+"/manifests/"+object, manifestAccept, what)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	data, err := readAllLimit(resp.Body, maxManifestSize, what)
	if err != nil {
		return nil, "", "", readError(ctx, err, what)
	}
	var got digest.Digest
	if want.Digest != "" {
		if got = want.Digest.Algorithm().FromBytes(data); got != want.Digest {
			return nil, "", "", errdefs.New(errdefs.ErrDataLoss, "%s is corrupt: its content has digest %s", what, got)
		}
		if want.Size >= 0 && int64(len(data)) != want.Size {
			return nil, "", "", errdefs.New(errdefs.ErrDataLoss, "%s: %d bytes, want %d", what, len(data), want.Size)
		}
	} else {
		got = digest.FromBytes(data)
		if h, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil && h.Algorithm() == got.Algorithm() && h != got {
			return nil, "", "", errdefs.New(errdefs.ErrDataLoss, "%s is corrupt: its content has digest %s, the registry says %s", what, got, h)
		}
	}
	var doc manifestDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, "", "", errdefs.InvalidArgument("%s: not a JSON manifest: %v", what, err)
	}
	mt := doc.MediaType
	if mt == "" {
		mt, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	}
	switch {
	case doc.SchemaVersion == 1 || mt == mediaTypeDockerSchema1 || mt == mediaTypeDockerSigned1:
		return nil, "", "", errdefs.InvalidArgument("%s: Docker schema 1 manifests are not supported; re-push the image with a current client", what)
	case isIndex(mt) || isManifest(mt):
	case doc.Manifests != nil:
		mt = ocispec.MediaTypeImageIndex
	case doc.Config != nil:
		mt = ocispec.MediaTypeImageManifest
	default:
		return nil, "", "", errdefs.InvalidArgument("%s: unsupported manifest media type %q", what, mt)
	}
	return data, mt, got, nil
}

func isIndex(mt string) bool { return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerList }
func isManifest(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

func (r *remote) fetchConfig(ctx context.Context, res *resolved) error {
	desc := res.manifest.Config
	what := "config " + desc.Digest.String()
	if desc.MediaType != ocispec.MediaTypeImageConfig && desc.MediaType != mediaTypeDockerConfig {
		return errdefs.InvalidArgument("not a container image (config media type %q)", desc.MediaType)
	}
	if err := desc.Digest.Validate(); err != nil {
		return errdefs.InvalidArgument("%s: invalid digest: %v", what, err)
	}
	if desc.Size < 0 || desc.Size > maxConfigSize {
		return errdefs.InvalidArgument("%s: size %d is out of range", what, desc.Size)
	}
	resp, err := r.get(ctx, CapPull, "/"+r.ref.Path+"/blobs/"+desc.Digest.String(), "", what)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := readAllLimit(resp.Body, desc.Size, what)
	if err != nil {
		return readError(ctx, err, what)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest || int64(len(data)) != desc.Size {
		return errdefs.New(errdefs.ErrDataLoss, "%s is corrupt: got %d bytes with digest %s, want %d bytes", what, len(data), got, desc.Size)
	}
	if err := json.Unmarshal(data, &res.config); err != nil {
		return errdefs.InvalidArgument("%s: %v", what, err)
	}
	if res.config.RootFS.Type != "layers" {
		return errdefs.InvalidArgument("%s: rootfs type %q is not \"layers\"", what, res.config.RootFS.Type)
	}
	if n := len(res.manifest.Layers); n > maxLayers {
		return errdefs.InvalidArgument("%d layers, more than the %d overlayfs can stack", n, maxLayers)
	}
	if n, m := len(res.config.RootFS.DiffIDs), len(res.manifest.Layers); n != m {
		return errdefs.New(errdefs.ErrDataLoss, "%s: %d diff_ids for %d layers", what, n, m)
	}
	for i, l := range res.manifest.Layers {
		if err := l.Digest.Validate(); err != nil {
			return errdefs.InvalidArgument("layer %d: invalid digest: %v", i, err)
		}
		if err := res.config.RootFS.DiffIDs[i].Validate(); err != nil {
			return errdefs.InvalidArgument("%s: diff_id %d: %v", what, i, err)
		}
		if l.Size < 0 {
			return errdefs.InvalidArgument("layer %s has negative size", l.Digest)
		}
		if _, ok := layerMediaTypes[l.MediaType]; !ok {
			if strings.Contains(l.MediaType, "encrypted") {
				return errdefs.New(errdefs.ErrUnimplemented, "encrypted layers are not supported (%s)", l.MediaType)
			}
			return errdefs.InvalidArgument("layer %s has unsupported media type %q", l.Digest, l.MediaType)
		}
	}
	res.configDesc = desc
	res.configSize = desc.Size
	return nil
}

// readError classifies a failure while reading a response body.
func readError(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return ctxError(ctx)
	}
	if kindOf(err) != nil {
		return err
	}
	return errdefs.Unavailable("%s: %v", what, err)
}

// hostPlatform fills the zero fields of p with the host's platform.
func hostPlatform(p ocispec.Platform) ocispec.Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

// choosePlatform picks want's manifest from an index: OS and architecture must
// match; an exact variant beats an unspecified one, which beats an older
// compatible one (arm/v6 on arm/v7), the newest first. On a tie the index's
// order decides.
func choosePlatform(want ocispec.Platform, descs []ocispec.Descriptor) (ocispec.Descriptor, error) {
	want = hostPlatform(want)
	wArch, wVariant := normaliseArch(want.Architecture, want.Variant)
	if wArch == "arm" && wVariant == "" {
		wVariant = "v7"
	}
	best, bestScore := -1, 0
	var seen []string
	for i, d := range descs {
		if d.Platform == nil || !isManifest(d.MediaType) && d.MediaType != "" {
			continue
		}
		arch, variant := normaliseArch(d.Platform.Architecture, d.Platform.Variant)
		seen = append(seen, platformString(d.Platform.OS, arch, variant))
		if !strings.EqualFold(d.Platform.OS, want.OS) || arch != wArch {
			continue
		}
		score := 0
		switch {
		case variant == wVariant:
			score = 100
		case variant == "":
			score = 99
		case arch == "arm" && armVersion(variant) > 0 && armVersion(variant) < armVersion(wVariant):
			score = armVersion(variant) // the newest older one
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, errdefs.NotFound("no image for platform %s (the index has: %s)",
			platformString(want.OS, wArch, wVariant), strings.Join(seen, ", "))
	}
	return descs[best], nil
}

func normaliseArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "x86_64", "x86-64", "amd64":
		if variant == "v1" {
			variant = ""
		}
		return "amd64", variant
	case "aarch64", "arm64":
		if variant == "v8" {
			variant = ""
		}
		return "arm64", variant
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	case "i386", "i686":
		return "386", variant
	}
	return arch, variant
}

func armVersion(v string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
	if err != nil || !strings.HasPrefix(v, "v") {
		return 0
	}
	return n
}

func platformString(os, arch, variant string) string {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}
