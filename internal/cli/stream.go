package cli

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/pflag"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// Transports of the streaming verbs, as crictl names them.
const (
	transportSPDY      = "spdy"
	transportWebSocket = "websocket"
)

// kubeletStreamHost completes a stream URL the runtime gave without a host,
// the way crictl does: such runtimes expect kubelet's server to proxy it.
const kubeletStreamHost = "127.0.0.1:10250"

// streamFlags are the options exec, attach and port-forward share: how to
// reach the runtime's streaming server once the CRI call has handed out a URL.
type streamFlags struct {
	transport string
	tlsServer string
	tlsCA     string
	tlsCert   string
	tlsKey    string
}

// register adds the flags; webSocket says whether the verb can use it.
func (f *streamFlags) register(fl *pflag.FlagSet, webSocket bool) {
	usage := "streaming `PROTOCOL`: spdy, or websocket (its v4 protocol cannot signal the end of stdin)"
	if !webSocket {
		usage = "streaming `PROTOCOL`: only spdy (CRI streaming servers do not forward ports over WebSocket)"
	}
	fl.StringVarP(&f.transport, "transport", "r", transportSPDY, usage)
	fl.StringVar(&f.tlsServer, "tls-sni", "localhost", "server `NAME` the streaming server's TLS certificate must carry")
	fl.StringVar(&f.tlsServer, "tls-server-name", "localhost", "alias of --tls-sni")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "`FILE` with the CA certificate of the streaming server (default: not verified)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "client certificate `FILE` for the streaming server")
	fl.StringVar(&f.tlsKey, "tls-key", "", "client key `FILE` for the streaming server")
	_ = fl.MarkHidden("tls-server-name")
}

// check refuses a bad combination before any call reaches the runtime.
func (f *streamFlags) check() error {
	if f.transport != transportSPDY && f.transport != transportWebSocket {
		return errdefs.InvalidArgument("--transport %q: want %s or %s", f.transport, transportSPDY, transportWebSocket)
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errdefs.InvalidArgument("--tls-cert and --tls-key go together")
	}
	return nil
}

// restConfig is the TLS setup of the streaming connection. Without a CA the
// server's certificate is not verified, as in crictl: the URL came from the
// runtime over its local socket, which is the trust anchor here.
func (f *streamFlags) restConfig() *rest.Config {
	tls := rest.TLSClientConfig{ServerName: f.tlsServer, CAFile: f.tlsCA, CertFile: f.tlsCert, KeyFile: f.tlsKey}
	if f.tlsCA == "" {
		tls.Insecure = true
		tls.ServerName = ""
	}
	return &rest.Config{TLSClientConfig: tls}
}

// executor returns the client of an exec or attach URL.
func (f *streamFlags) executor(u *url.URL) (remotecommand.Executor, error) {
	cfg := f.restConfig()
	if f.transport == transportWebSocket {
		// v5 first (it can close stdin); the CRI streaming servers of
		// kubelet's era speak v4 only, which client-go's default refuses.
		return remotecommand.NewWebSocketExecutorForProtocols(cfg, http.MethodGet, u.String(),
			remotecommandconsts.StreamProtocolV5Name, remotecommandconsts.StreamProtocolV4Name)
	}
	return remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
}

// dialer returns the connection maker of a port-forward URL. Port forwarding
// is SPDY only: CRI streaming servers do not tunnel SPDY over WebSocket (an
// API server feature), and client-go has no client for their own WebSocket
// port-forward protocol.
func (f *streamFlags) dialer(u *url.URL) (streamhttp.Dialer, error) {
	tr, upgrader, err := spdy.RoundTripperFor(f.restConfig())
	if err != nil {
		return nil, fmt.Errorf("set up SPDY: %w", err)
	}
	return spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: tr}, http.MethodPost, u), nil
}

// streamURL parses the URL a streaming RPC returned.
func streamURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("the runtime returned an empty streaming URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the runtime returned a bad streaming URL %q: %w", raw, err)
	}
	if u.Host == "" {
		u.Host = kubeletStreamHost
	}
	if u.Scheme == "" {
		u.Scheme = "http"
	}
	return u, nil
}
