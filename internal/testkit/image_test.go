package testkit

import (
	"errors"
	"runtime"
	"slices"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestNewImageConfigAndMediaTypes(t *testing.T) {
	cfg := ImageConfig{
		Entrypoint: []string{"/bin/app"}, Cmd: []string{"--serve"}, Env: []string{"A=1"},
		User: "1000:1000", WorkingDir: "/srv", StopSignal: "SIGINT",
		Labels: map[string]string{"k": "v"}, ExposedPorts: []string{"80/tcp", "53/udp"},
		Volumes: []string{"/data"},
	}
	gz := MustLayer(t, []Entry{File("a", "1")}, Gzip)
	zs := MustLayer(t, []Entry{File("b", "2")}, Zstd)
	img := MustImage(t, cfg, gz, zs)

	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("manifest type %s", mt)
	}
	m, _ := img.Manifest()
	if m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 2 ||
		m.Layers[0].MediaType != types.OCILayer || m.Layers[1].MediaType != types.OCILayerZStd {
		t.Errorf("manifest = %+v", m)
	}
	cf, _ := img.ConfigFile()
	c := cf.Config
	if !slices.Equal(c.Entrypoint, cfg.Entrypoint) || !slices.Equal(c.Cmd, cfg.Cmd) || !slices.Equal(c.Env, cfg.Env) ||
		c.User != cfg.User || c.WorkingDir != cfg.WorkingDir || c.StopSignal != cfg.StopSignal || c.Labels["k"] != "v" {
		t.Errorf("config = %+v", c)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ports = %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("volumes = %v", c.Volumes)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Time.Equal(FixedTime) {
		t.Errorf("platform %s/%s created %v", cf.OS, cf.Architecture, cf.Created)
	}
	if len(cf.RootFS.DiffIDs) != 2 || cf.RootFS.DiffIDs[1] != Must(zs.DiffID()) {
		t.Errorf("diffIDs = %v", cf.RootFS.DiffIDs)
	}

	// Equal inputs, equal digests; the caller's label map is not aliased.
	again := MustImage(t, cfg, gz, zs)
	cfg.Labels["k"] = "changed"
	if Must(img.Digest()) != Must(again.Digest()) {
		t.Error("NewImage is not deterministic")
	}
	if cf, _ := img.ConfigFile(); cf.Config.Labels["k"] != "v" {
		t.Error("image aliases the caller's Labels map")
	}
}

func TestNewDockerImageRelabelsLayers(t *testing.T) {
	gz := MustLayer(t, []Entry{File("a", "1")}, Gzip)
	plain := MustLayer(t, []Entry{File("b", "2")}, Uncompressed)
	zs := MustLayer(t, []Entry{File("c", "3")}, Zstd)
	img, err := NewDockerImage(ImageConfig{}, gz, plain, zs)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	want := []types.MediaType{types.DockerLayer, types.DockerUncompressedLayer, types.OCILayerZStd}
	if m.MediaType != types.DockerManifestSchema2 || m.Config.MediaType != types.DockerConfigJSON {
		t.Errorf("types %s / %s", m.MediaType, m.Config.MediaType)
	}
	for i, l := range m.Layers {
		if l.MediaType != want[i] {
			t.Errorf("layer %d type %s, want %s", i, l.MediaType, want[i])
		}
	}
	if m.Layers[0].Digest != Must(gz.Digest()) {
		t.Error("relabelling changed the blob")
	}
	// The original layer keeps its OCI type.
	if mt, _ := gz.MediaType(); mt != types.OCILayer {
		t.Errorf("source layer became %s", mt)
	}
	// Layers from elsewhere are relabelled by wrapping.
	wrapped := relabelled{Layer: gz, mt: types.OCILayer}
	img, err = NewDockerImage(ImageConfig{}, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := img.Manifest(); m.Layers[0].MediaType != types.DockerLayer {
		t.Errorf("foreign layer type %s", m.Layers[0].MediaType)
	}
}

func TestBusyboxImageAndErrors(t *testing.T) {
	if _, err := BusyboxLayer(Gzip); err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	img := MustBusyboxImage(t, ImageConfig{})
	cf, _ := img.ConfigFile()
	if !slices.Equal(cf.Config.Cmd, []string{"sh"}) {
		t.Errorf("default Cmd = %q", cf.Config.Cmd)
	}
	img = MustBusyboxImage(t, ImageConfig{Cmd: []string{"sleep", "9"}})
	if cf, _ := img.ConfigFile(); !slices.Equal(cf.Config.Cmd, []string{"sleep", "9"}) {
		t.Errorf("Cmd = %q", cf.Config.Cmd)
	}

	if _, err := NewImage(ImageConfig{}, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil layer: %v", err)
	}
	if _, err := NewIndex(img, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("nil image: %v", err)
	}
}
