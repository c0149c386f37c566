package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/config"
)

// Server serves /metrics on [metrics] address, over HTTPS when tls_cert and
// tls_key are set. Apply puts a new configuration in force without a
// restart of the daemon.
type Server struct {
	handler http.Handler
	log     *slog.Logger

	mu   sync.Mutex // serialises Apply and Close
	cfg  config.Metrics
	srv  *http.Server
	addr net.Addr
	done chan struct{} // closed when srv's Serve returned
	// cert is the key pair in force; each Apply reads the files again, so
	// a reload picks up a renewed certificate without a new listener.
	cert atomic.Pointer[tls.Certificate]
}

// shutdownGrace lets a scrape in flight finish when the listener goes.
const shutdownGrace = 2 * time.Second

// NewServer returns a Server that serves nothing until Apply.
func NewServer(m *Metrics, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &Server{handler: mux, log: log}
}

// Apply puts cfg in force. An empty address stops serving. The listener is
// replaced only when the address or TLS being on changes; with TLS on, the
// key pair is read again every time. On error the old configuration stays
// in force and serves on.
func (s *Server) Apply(cfg config.Metrics) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tlsOn := cfg.TLSCert != "" && cfg.TLSKey != ""
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("metrics: tls_cert and tls_key must be set together")
	}
	var cert *tls.Certificate
	if tlsOn {
		c, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("metrics: load TLS key pair %s, %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		cert = &c
	}
	wasTLS := s.cfg.TLSCert != "" && s.cfg.TLSKey != ""
	if s.srv != nil && cfg.Address == s.cfg.Address && tlsOn == wasTLS {
		if cert != nil {
			s.cert.Store(cert)
		}
		s.cfg = cfg
		return nil
	}
	if cfg.Address == "" {
		s.stopLocked()
		s.cfg = cfg
		return nil
	}
	// The same address must be free before it can be bound again; a new
	// one is bound first, so a bad address leaves the old server serving.
	if s.srv != nil && cfg.Address == s.cfg.Address {
		s.stopLocked()
	}
	lis, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", cfg.Address, err)
	}
	s.stopLocked()
	if cert != nil {
		s.cert.Store(cert)
		lis = tls.NewListener(lis, &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		})
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	}()
	s.srv, s.addr, s.done, s.cfg = srv, lis.Addr(), done, cfg
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	s.log.Info("metrics server listening", "url", scheme+"://"+s.addr.String()+"/metrics")
	return nil
}

// Addr is the address being served, nil when off.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops serving.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	s.cfg = config.Metrics{}
}

func (s *Server) stopLocked() {
	if s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
	s.srv, s.addr, s.done = nil, nil, nil
}
