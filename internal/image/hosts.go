package image

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// RegistryHost is one endpoint that serves a registry, ready to use.
type RegistryHost struct {
	Scheme       string // https or http
	Host         string // host[:port]
	Path         string // API root: "/v2", or a mirror's "/prefix/v2"
	Capabilities Capabilities
	Header       http.Header // extra headers for every request (hosts.toml `header`)
	Upstream     bool        // the registry's own server (tried after the mirrors)
	Client       *http.Client
}

// URL returns the address of an API path such as "/library/busybox/manifests/latest".
func (h RegistryHost) URL(apiPath string) string {
	return h.Scheme + "://" + h.Host + h.Path + apiPath
}

// Hosts maps a registry name to its hosts, read from a containerd-style
// hosts.toml directory:
//
//	<dir>/<registry>/hosts.toml   (<registry> is host or host:port)
//	<dir>/_default/hosts.toml     used when the registry has no directory
//
// Certificates lying in the chosen directory the certs.d way (*.crt CAs,
// *.cert/*.key client pairs) are trusted for the upstream server.
//
// Parsed results are cached per registry and revalidated by stat-ing every
// file they came from (directories, hosts.toml, certificates), so an edit
// takes effect at the next pull without re-reading unchanged files.
type Hosts struct {
	dir string

	mu      sync.Mutex
	cache   map[string]*hostsEntry
	plain   *http.Client // hosts without TLS settings share connections
	clients []*http.Client
}

type hostsEntry struct {
	stamps []fileStamp
	hosts  []RegistryHost
}

type fileStamp struct {
	path   string
	exists bool
	mod    time.Time
	size   int64
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path}
	}
	return fileStamp{path: path, exists: true, mod: st.ModTime(), size: st.Size()}
}

// NewHosts reads registry configuration from dir; "" means defaults only.
func NewHosts(dir string) *Hosts {
	h := &Hosts{dir: dir, cache: map[string]*hostsEntry{}}
	h.plain = &http.Client{Transport: newTransport(nil)}
	return h
}

// Close drops idle connections of every client handed out.
func (h *Hosts) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.plain.CloseIdleConnections()
	for _, c := range h.clients {
		c.CloseIdleConnections()
	}
}

// Lookup returns the hosts to try for registry, in order: mirrors as
// hosts.toml lists them, then the upstream server. A broken configuration is
// an ErrFailedPrecondition naming the file.
func (h *Hosts) Lookup(registry string) ([]RegistryHost, error) {
	if registry == "" || registry == "." || registry == ".." || strings.ContainsAny(registry, `/\`) {
		return nil, errdefs.InvalidArgument("invalid registry name %q", registry)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.cache[registry]; ok && e.fresh() {
		return e.hosts, nil
	}
	e, err := h.load(registry)
	if err != nil {
		return nil, err
	}
	if old, ok := h.cache[registry]; ok {
		h.retire(old)
	}
	h.cache[registry] = e
	return e.hosts, nil
}

func (e *hostsEntry) fresh() bool {
	for _, s := range e.stamps {
		if stampOf(s.path) != s {
			return false
		}
	}
	return true
}

// retire closes idle connections of clients only the old entry used.
func (h *Hosts) retire(e *hostsEntry) {
	for _, rh := range e.hosts {
		if rh.Client == h.plain {
			continue
		}
		rh.Client.CloseIdleConnections()
		h.clients = slices.DeleteFunc(h.clients, func(c *http.Client) bool { return c == rh.Client })
	}
}

func (h *Hosts) load(registry string) (*hostsEntry, error) {
	e := &hostsEntry{}
	var dir string
	if h.dir != "" {
		// Both candidates are stamped: creating the registry's own directory
		// later must take over from _default.
		for _, cand := range []string{registry, "_default"} {
			p := filepath.Join(h.dir, cand)
			e.stamps = append(e.stamps, stampOf(p))
			if fi, err := os.Stat(p); dir == "" && err == nil && fi.IsDir() {
				dir = p
			}
		}
	}
	var data []byte
	var certs certFiles
	if dir != "" {
		file := filepath.Join(dir, "hosts.toml")
		e.stamps = append(e.stamps, stampOf(file))
		var err error
		data, err = os.ReadFile(file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.New(errdefs.ErrFailedPrecondition, "registry config %s: %v", file, err)
		}
		if certs, err = findCertFiles(dir); err != nil {
			return nil, errdefs.New(errdefs.ErrFailedPrecondition, "registry config %s: %v", dir, err)
		}
	}
	specs, err := parseHostsFile(registry, dir, data)
	if err != nil {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, "registry config %s: %v", filepath.Join(dir, "hosts.toml"), err)
	}
	up := &specs[len(specs)-1]
	up.caFiles = append(up.caFiles, certs.cas...)
	up.clientPairs = append(up.clientPairs, certs.pairs...)

	for _, s := range specs {
		client, stamps, err := h.clientFor(s)
		if err != nil {
			return nil, errdefs.New(errdefs.ErrFailedPrecondition, "registry config for %s (host %s): %v", registry, s.host, err)
		}
		e.stamps = append(e.stamps, stamps...)
		e.hosts = append(e.hosts, RegistryHost{
			Scheme: s.scheme, Host: s.host, Path: s.path, Capabilities: s.caps,
			Header: s.header, Upstream: s.upstream, Client: client,
		})
	}
	return e, nil
}

type certFiles struct {
	cas   []string
	pairs [][2]string
}

// findCertFiles finds certs.d-style files: *.crt are CAs, x.cert with x.key a
// client pair.
func findCertFiles(dir string) (certFiles, error) {
	var c certFiles
	ents, err := os.ReadDir(dir)
	if err != nil {
		return c, err
	}
	for _, ent := range ents {
		name := ent.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.HasSuffix(name, ".crt"):
			c.cas = append(c.cas, p)
		case strings.HasSuffix(name, ".cert"):
			key := strings.TrimSuffix(p, ".cert") + ".key"
			if _, err := os.Stat(key); err != nil {
				return c, fmt.Errorf("client certificate %s has no key file %s", p, filepath.Base(key))
			}
			c.pairs = append(c.pairs, [2]string{p, key})
		}
	}
	return c, nil
}

// clientFor builds the HTTP client for a host and stamps the files it read.
func (h *Hosts) clientFor(s hostSpec) (*http.Client, []fileStamp, error) {
	if s.scheme == "http" || (len(s.caFiles) == 0 && len(s.clientPairs) == 0 && !s.skipVerify) {
		return h.plain, nil, nil
	}
	var stamps []fileStamp
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.skipVerify} //nolint:gosec // skip_verify is the operator's explicit choice
	if len(s.caFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		for _, f := range s.caFiles {
			stamps = append(stamps, stampOf(f))
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, nil, fmt.Errorf("ca: %v", err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("ca: no PEM certificate in %s", f)
			}
		}
		cfg.RootCAs = pool
	}
	for _, p := range s.clientPairs {
		stamps = append(stamps, stampOf(p[0]))
		certPEM, err := os.ReadFile(p[0])
		if err != nil {
			return nil, nil, fmt.Errorf("client: %v", err)
		}
		keyPEM := certPEM
		if p[1] != "" {
			stamps = append(stamps, stampOf(p[1]))
			if keyPEM, err = os.ReadFile(p[1]); err != nil {
				return nil, nil, fmt.Errorf("client: %v", err)
			}
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("client %s: %v", p[0], err)
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	c := &http.Client{Transport: newTransport(cfg)}
	h.clients = append(h.clients, c)
	return c, stamps, nil
}

func newTransport(tlsCfg *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   10 * time.Second,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
