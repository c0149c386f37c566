package cli

import (
	"errors"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestStreamFlagsTLS(t *testing.T) {
	t.Parallel()
	// No CA: the URL came over the runtime's own socket; not verified.
	f := streamFlags{transport: transportSPDY, tlsServer: "localhost"}
	if cfg := f.restConfig(); !cfg.Insecure || cfg.ServerName != "" {
		t.Errorf("without a CA: %+v", cfg.TLSClientConfig)
	}
	f = streamFlags{transport: transportSPDY, tlsServer: "node1", tlsCA: "/ca.pem", tlsCert: "/c.pem", tlsKey: "/k.pem"}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	cfg := f.restConfig()
	if cfg.Insecure || cfg.ServerName != "node1" || cfg.CAFile != "/ca.pem" || cfg.CertFile != "/c.pem" || cfg.KeyFile != "/k.pem" {
		t.Errorf("with a CA: %+v", cfg.TLSClientConfig)
	}
	for _, bad := range []streamFlags{
		{transport: "quic"},
		{transport: transportSPDY, tlsKey: "/k.pem"},
		{transport: transportWebSocket, tlsCert: "/c.pem"},
	} {
		if err := bad.check(); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want invalid argument", bad, err)
		}
	}
}

func TestStreamURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:4321/exec/tok": "http://127.0.0.1:4321/exec/tok",
		"https://node:10010/attach/x":    "https://node:10010/attach/x",
		// Relative URLs are kubelet's to serve, as crictl assumes.
		"/exec/tok": "http://127.0.0.1:10250/exec/tok",
	} {
		u, err := streamURL(in)
		if err != nil || u.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "http://[::1"} {
		if _, err := streamURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
