package stream

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
)

// Server is the running streaming endpoint.
type Server struct {
	lib    streaming.Server
	expiry *expiry
	http   *http.Server
	lis    net.Listener
	done   chan error
}

// Listen binds the streaming server per cfg and serves it in the
// background until Close. The listener is bound here, not in the library's
// Start, so URLs handed out right away already carry the real port (port 0
// picks a free one).
func Listen(cfg config.StreamConfig, rt streaming.Runtime) (*Server, error) {
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, errdefs.InvalidArgument("stream: load TLS key pair: %v", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("stream: listen: %w", err)
	}
	base := &url.URL{Scheme: "http", Host: lis.Addr().String()}
	if tlsCfg != nil {
		base.Scheme = "https"
	}
	sc := streaming.DefaultConfig
	sc.Addr = lis.Addr().String()
	sc.BaseURL = base
	sc.TLSConfig = tlsCfg
	lib, err := streaming.NewServer(sc, rt)
	if err != nil {
		lis.Close()
		return nil, fmt.Errorf("stream: %w", err)
	}
	exp := newExpiry(cfg.URLTTL.Std())
	s := &Server{
		lib:    lib,
		expiry: exp,
		http:   &http.Server{Handler: exp.wrap(lib), TLSConfig: tlsCfg, ReadHeaderTimeout: 30 * time.Second},
		lis:    lis,
		done:   make(chan error, 1),
	}
	go func() {
		var err error
		if tlsCfg != nil {
			err = s.http.ServeTLS(lis, "", "")
		} else {
			err = s.http.Serve(lis)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// The Get methods return a single-use URL for the request that expires
// after stream.url_ttl. Their errors are gRPC statuses (bad request, too
// many pending URLs) and pass through.

// GetExec hands out the exec URL.
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := s.lib.GetExec(req)
	if err == nil {
		s.expiry.issued(resp.GetUrl())
	}
	return resp, err
}

// GetAttach returns a single-use URL for the attach.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := s.lib.GetAttach(req)
	if err == nil {
		s.expiry.issued(resp.GetUrl())
	}
	return resp, err
}

// GetPortForward returns a single-use URL for the port forward.
func (s *Server) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	resp, err := s.lib.GetPortForward(req)
	if err == nil {
		s.expiry.issued(resp.GetUrl())
	}
	return resp, err
}

// Close stops serving and ends open streams.
func (s *Server) Close() error {
	err := s.http.Close()
	if serveErr := <-s.done; serveErr != nil && err == nil {
		err = serveErr
	}
	return err
}

// SetURLTTL changes how long the URLs handed out from now on stay valid;
// URLs already out keep their deadline. It is capped at LibraryURLTTL.
func (s *Server) SetURLTTL(ttl time.Duration) {
	s.expiry.ttl.Store(int64(min(ttl, LibraryURLTTL)))
}
