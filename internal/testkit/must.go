package testkit

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Must returns v or panics with err; for demo programs and benchmark setup
// where there is no testing.TB.
func Must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// NewRegistry starts a registry that is closed when t ends.
func NewRegistry(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r, err := StartRegistry(opts...)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close registry: %v", err)
		}
	})
	return r
}

// MustLayer is NewLayer failing t on error.
func MustLayer(t testing.TB, entries []Entry, c Compression) v1.Layer {
	t.Helper()
	return check[v1.Layer](t, "layer")(NewLayer(entries, c))
}

// MustRandomLayer is RandomLayer failing t on error.
func MustRandomLayer(t testing.TB, size, seed int64, c Compression) v1.Layer {
	t.Helper()
	return check[v1.Layer](t, "random layer")(RandomLayer(size, seed, c))
}

// MustGoBinaryLayer is GoBinaryLayer failing t on error.
func MustGoBinaryLayer(t testing.TB, pkg, dest string, c Compression) v1.Layer {
	t.Helper()
	return check[v1.Layer](t, "go binary layer")(GoBinaryLayer(pkg, dest, c))
}

// MustImage is NewImage failing t on error.
func MustImage(t testing.TB, cfg ImageConfig, layers ...v1.Layer) v1.Image {
	t.Helper()
	return check[v1.Image](t, "image")(NewImage(cfg, layers...))
}

// MustBusyboxImage is BusyboxImage failing t on error.
func MustBusyboxImage(t testing.TB, cfg ImageConfig) v1.Image {
	t.Helper()
	return check[v1.Image](t, "busybox image")(BusyboxImage(cfg))
}

// MustIndex is NewIndex failing t on error.
func MustIndex(t testing.TB, images ...v1.Image) v1.ImageIndex {
	t.Helper()
	return check[v1.ImageIndex](t, "index")(NewIndex(images...))
}

// MustPush is Push failing t on error.
func (r *Registry) MustPush(t testing.TB, ref string, img v1.Image) v1.Hash {
	t.Helper()
	return check[v1.Hash](t, "push "+ref)(r.Push(ref, img))
}

// MustPushIndex is PushIndex failing t on error.
func (r *Registry) MustPushIndex(t testing.TB, ref string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	return check[v1.Hash](t, "push "+ref)(r.PushIndex(ref, idx))
}

func check[T any](t testing.TB, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}
