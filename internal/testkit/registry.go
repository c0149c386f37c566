package testkit

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-memory OCI distribution registry on 127.0.0.1, built on
// go-containerregistry's pkg/registry, with optional auth and TLS, a request
// log, and a fault hook. Its methods are safe for concurrent use.
type Registry struct {
	Host string // "127.0.0.1:PORT"
	URL  string // "http://127.0.0.1:PORT" or "https://..."

	opts     registryOptions
	srv      *http.Server
	registry http.Handler
	pki      *pki // nil without TLS
	auth     *tokenAuth

	// internalKey marks the kit's own requests (Push), which skip auth,
	// faults and the request log so tests observe only their client.
	internalKey string
	pushClient  *http.Transport

	fault atomic.Pointer[Fault]

	mu       sync.Mutex
	requests []string // "METHOD /path"
	closed   bool
	inflight sync.WaitGroup // handlers running; Add only under mu while !closed

	ctx       context.Context // cancelled by Close: ends stalled and slow responses
	cancel    context.CancelFunc
	served    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type authMode int

const (
	authNone authMode = iota
	authBasic
	authToken
)

type registryOptions struct {
	auth             authMode
	user, password   string
	tls, clientCerts bool
	log              io.Writer
}

// Option configures StartRegistry.
type Option func(*registryOptions)

// WithBasicAuth makes every request need HTTP basic auth with these
// credentials; others get 401 with a Basic challenge.
func WithBasicAuth(user, password string) Option {
	return func(o *registryOptions) { o.auth, o.user, o.password = authBasic, user, password }
}

// WithTokenAuth enables the Docker token flow: requests need a bearer token,
// which the registry's own /token endpoint issues for these basic
// credentials (GET), an OAuth2 password grant or a refresh token (POST). See
// also RegistryToken and IdentityToken.
func WithTokenAuth(user, password string) Option {
	return func(o *registryOptions) { o.auth, o.user, o.password = authToken, user, password }
}

// WithTLS serves HTTPS with a certificate for 127.0.0.1 and localhost signed
// by a fresh CA (CACertPEM).
func WithTLS() Option { return func(o *registryOptions) { o.tls = true } }

// WithClientCert implies WithTLS and requires clients to present a
// certificate signed by the registry's CA (ClientCertPEM, ClientKeyPEM).
func WithClientCert() Option {
	return func(o *registryOptions) { o.tls, o.clientCerts = true, true }
}

// WithLog sends the per-request log of the underlying registry to w
// (discarded by default).
func WithLog(w io.Writer) Option { return func(o *registryOptions) { o.log = w } }

// StartRegistry starts a registry on 127.0.0.1 on a free port.
func StartRegistry(opts ...Option) (*Registry, error) {
	var o registryOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.auth != authNone && o.user == "" {
		return nil, errdefs.InvalidArgument("testkit: registry auth needs a user name")
	}
	logw := o.log
	if logw == nil {
		logw = io.Discard
	}
	r := &Registry{
		opts:        o,
		registry:    registry.New(registry.Logger(log.New(logw, "registry: ", 0))),
		internalKey: randomToken(),
		served:      make(chan struct{}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errdefs.Unavailable("testkit: registry listen: %v", err)
	}
	if o.tls {
		if r.pki, err = newPKI(o.clientCerts); err != nil {
			ln.Close()
			return nil, err
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.Host = ln.Addr().String()
	r.URL = "http://" + r.Host
	r.srv = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return r.ctx },
		ErrorLog:          log.New(logw, "registry server: ", 0),
	}
	if o.tls {
		r.URL = "https://" + r.Host
		r.srv.TLSConfig = r.pki.serverConfig()
	}
	if o.auth == authToken {
		r.auth = newTokenAuth(r.URL+"/token", o.user, o.password)
	}
	r.pushClient = r.Transport()
	go func() {
		defer close(r.served)
		if o.tls {
			r.srv.ServeTLS(ln, "", "")
		} else {
			r.srv.Serve(ln)
		}
	}()
	return r, nil
}

// Close stops the registry: it releases stalled and slow responses, closes
// every connection and waits (up to 5 s) for running handlers to return.
// Later calls return the first result.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.cancel()
		// Close, not Shutdown: an HTTP/2 graceful shutdown lingers a
		// second per connection, and a test registry owes no one grace.
		r.closeErr = r.srv.Close()
		<-r.served
		r.pushClient.CloseIdleConnections()
		done := make(chan struct{})
		go func() { r.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			r.closeErr = errors.New("testkit: registry handlers still running 5s after Close")
		}
	})
	return r.closeErr
}

// Ref returns the full reference of repoTag ("repo:tag" or "repo@digest")
// in this registry: "127.0.0.1:PORT/" + repoTag.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// Push uploads img as ref ("library/busybox:latest", "repo" for :latest, or
// "repo@sha256:..." which must be img's digest) and returns the manifest
// digest. Pushes bypass auth, faults and the request log.
func (r *Registry) Push(ref string, img v1.Image) (v1.Hash, error) {
	if img == nil {
		return v1.Hash{}, errdefs.InvalidArgument("testkit: push %q: nil image", ref)
	}
	return r.push(ref, img, func(tag name.Reference, o ...remote.Option) error { return remote.Write(tag, img, o...) })
}

// PushIndex uploads idx and all its images as ref; see Push.
func (r *Registry) PushIndex(ref string, idx v1.ImageIndex) (v1.Hash, error) {
	if idx == nil {
		return v1.Hash{}, errdefs.InvalidArgument("testkit: push %q: nil index", ref)
	}
	return r.push(ref, idx, func(tag name.Reference, o ...remote.Option) error { return remote.WriteIndex(tag, idx, o...) })
}

func (r *Registry) push(ref string, m interface{ Digest() (v1.Hash, error) }, write func(name.Reference, ...remote.Option) error) (v1.Hash, error) {
	ref = strings.TrimPrefix(ref, r.Host+"/")
	parsed, err := name.ParseReference(r.Ref(ref))
	if err != nil {
		return v1.Hash{}, errdefs.InvalidArgument("testkit: bad reference %q: %v", ref, err)
	}
	digest, err := m.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("testkit: push %s: %w", ref, err)
	}
	if d, ok := parsed.(name.Digest); ok && d.DigestStr() != digest.String() {
		return v1.Hash{}, errdefs.InvalidArgument("testkit: push %s: content digest is %s", ref, digest)
	}
	if err := write(parsed, remote.WithTransport(r.internalTransport()), remote.WithContext(r.ctx)); err != nil {
		return v1.Hash{}, fmt.Errorf("testkit: push %s: %w", ref, err)
	}
	return digest, nil
}

// Transport returns a transport that trusts the registry's CA and presents
// its client certificate when those are configured.
func (r *Registry) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if r.pki != nil {
		t.TLSClientConfig = r.pki.clientConfig()
	}
	return t
}

// Authenticator returns credentials that the registry accepts: the
// configured user and password, or anonymous without auth.
func (r *Registry) Authenticator() authn.Authenticator {
	if r.opts.auth == authNone {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.opts.user, Password: r.opts.password}
}

// internalTransport tags requests as the kit's own.
func (r *Registry) internalTransport() http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		req = req.Clone(req.Context())
		req.Header.Set(internalHeader, r.internalKey)
		return r.pushClient.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

const internalHeader = "X-Testkit-Internal"

// ServeHTTP is the registry's handler: request log, then the fault hook,
// then auth, then the registry proper.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	internal := req.Header.Get(internalHeader) == r.internalKey
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		writeRegistryError(w, req, http.StatusServiceUnavailable, "UNAVAILABLE", "registry closed")
		return
	}
	r.inflight.Add(1)
	defer r.inflight.Done()
	if !internal {
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
	}
	r.mu.Unlock()

	if internal {
		r.registry.ServeHTTP(w, req)
		return
	}
	var h http.Handler = http.HandlerFunc(r.serveAuthenticated)
	if f := r.fault.Load(); f != nil {
		h = (*f)(h)
	}
	h.ServeHTTP(w, req)
}

func (r *Registry) serveAuthenticated(w http.ResponseWriter, req *http.Request) {
	switch r.opts.auth {
	case authBasic:
		if !basicAuthOK(req, r.opts.user, r.opts.password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="testkit"`)
			writeRegistryError(w, req, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	case authToken:
		if req.URL.Path == tokenPath {
			r.auth.serveToken(w, req)
			return
		}
		if !r.auth.authorized(req) {
			r.auth.challenge(w, req)
			return
		}
	}
	r.registry.ServeHTTP(w, req)
}

// Requests counts the requests so far whose path contains substr, e.g. a
// blob digest's hex or "/manifests/". Every request a client sent counts,
// including ones refused by auth or a fault, and /token exchanges; Push's do
// not.
func (r *Registry) Requests(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, line := range r.requests {
		if _, p, _ := strings.Cut(line, " "); strings.Contains(p, substr) {
			n++
		}
	}
	return n
}

// RequestLog returns the requests so far as "METHOD /path", oldest first.
func (r *Registry) RequestLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// ResetRequests forgets the request log.
func (r *Registry) ResetRequests() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// SetFault installs f in front of every client request (after the request
// log, before auth); nil removes it. Requests already running keep the fault
// they started with.
func (r *Registry) SetFault(f Fault) {
	if f == nil {
		r.fault.Store(nil)
		return
	}
	r.fault.Store(&f)
}

// CACertPEM is the PEM certificate of the CA that signed the registry's
// certificate, nil without TLS.
func (r *Registry) CACertPEM() []byte {
	if r.pki == nil {
		return nil
	}
	return r.pki.caPEM
}

// ClientCertPEM and ClientKeyPEM are a client certificate the registry
// accepts, nil unless WithClientCert.
func (r *Registry) ClientCertPEM() []byte {
	if r.pki == nil {
		return nil
	}
	return r.pki.clientCertPEM
}

// ClientKeyPEM is the private key of ClientCertPEM.
func (r *Registry) ClientKeyPEM() []byte {
	if r.pki == nil {
		return nil
	}
	return r.pki.clientKeyPEM
}

// TLSConfig returns a client TLS config for the registry (nil without TLS).
func (r *Registry) TLSConfig() *tls.Config {
	if r.pki == nil {
		return nil
	}
	return r.pki.clientConfig()
}

// RegistryToken returns a static bearer token the registry accepts directly
// (authn.AuthConfig.RegistryToken); "" unless WithTokenAuth.
func (r *Registry) RegistryToken() string {
	if r.auth == nil {
		return ""
	}
	return r.auth.static
}

// IdentityToken returns a refresh token the /token endpoint accepts
// (authn.AuthConfig.IdentityToken); "" unless WithTokenAuth.
func (r *Registry) IdentityToken() string {
	if r.auth == nil {
		return ""
	}
	return r.auth.refresh
}

// RevokeTokens invalidates every bearer token issued so far (not the static
// RegistryToken), so a client must go back to /token.
func (r *Registry) RevokeTokens() {
	if r.auth != nil {
		r.auth.revoke()
	}
}

func randomToken() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// writeRegistryError writes an error in the distribution spec's JSON shape.
func writeRegistryError(w http.ResponseWriter, req *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if req.Method != http.MethodHead {
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`+"\n", code, msg)
	}
}
