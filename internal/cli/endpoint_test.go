package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestResolveEndpoints(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name                 string
		rFlag, iFlag         string
		env                  map[string]string
		wantRuntime, wantImg string
	}{
		{name: "defaults", wantRuntime: defaultEndpoint, wantImg: defaultEndpoint},
		{name: "image follows runtime flag", rFlag: "unix:///run/containerd/containerd.sock",
			wantRuntime: "unix:///run/containerd/containerd.sock", wantImg: "unix:///run/containerd/containerd.sock"},
		{name: "env when no flag", env: map[string]string{envRuntimeEndpoint: "unix:///run/a.sock"},
			wantRuntime: "unix:///run/a.sock", wantImg: "unix:///run/a.sock"},
		{name: "flag beats env", rFlag: "unix:///run/flag.sock", env: map[string]string{envRuntimeEndpoint: "unix:///run/env.sock"},
			wantRuntime: "unix:///run/flag.sock", wantImg: "unix:///run/flag.sock"},
		{name: "image env beats runtime", rFlag: "unix:///run/rt.sock", env: map[string]string{envImageEndpoint: "unix:///run/img.sock"},
			wantRuntime: "unix:///run/rt.sock", wantImg: "unix:///run/img.sock"},
		{name: "image flag beats image env", iFlag: "unix:///run/iflag.sock", env: map[string]string{envImageEndpoint: "unix:///run/img.sock"},
			wantRuntime: defaultEndpoint, wantImg: "unix:///run/iflag.sock"},
		{name: "bare absolute path", rFlag: "/run/crio/crio.sock",
			wantRuntime: "unix:///run/crio/crio.sock", wantImg: "unix:///run/crio/crio.sock"},
		{name: "bare relative path", rFlag: "x.sock",
			wantRuntime: "unix://" + filepath.Join(cwd, "x.sock"), wantImg: "unix://" + filepath.Join(cwd, "x.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps, err := resolveEndpoints(tc.rFlag, tc.iFlag, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if eps.runtime != tc.wantRuntime || eps.image != tc.wantImg {
				t.Errorf("got runtime %q image %q, want %q %q", eps.runtime, eps.image, tc.wantRuntime, tc.wantImg)
			}
		})
	}
}

func TestResolveEndpointsRejects(t *testing.T) {
	for _, ep := range []string{"tcp://127.0.0.1:1234", "npipe:////./pipe/x", "unix://run/x.sock", "unix://", "   "} {
		_, err := resolveEndpoints(ep, "", func(string) string { return "" })
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: got %v, want an invalid-argument error", ep, err)
		}
	}
	// A bad image endpoint fails even when the runtime one is fine.
	if _, err := resolveEndpoints("", "tcp://x:1", func(string) string { return "" }); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad image endpoint: got %v", err)
	}
}
