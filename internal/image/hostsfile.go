package image

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Capabilities says what a registry host may be used for (hosts.toml
// `capabilities`).
type Capabilities uint8

const (
	CapPull    Capabilities = 1 << iota // fetch blobs, and manifests by digest
	CapResolve                          // turn a tag into a manifest digest
	CapPush
	capAll = CapPull | CapResolve | CapPush
)

// hostSpec is one host as the hosts.toml directory describes it, before any
// file it names is read.
type hostSpec struct {
	scheme      string // https or http
	host        string // host[:port]
	path        string // API root, "/v2" unless a mirror says otherwise
	caps        Capabilities
	caFiles     []string
	clientPairs [][2]string // cert, key ("" = key in the cert file)
	skipVerify  bool
	header      http.Header
	upstream    bool
}

// hostFields are the keys that a [host."..."] table and the file's top level
// (which describes the upstream server) share.
type hostFields struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
}

type hostsFile struct {
	Server       string                `toml:"server"`
	Capabilities []string              `toml:"capabilities"`
	CA           any                   `toml:"ca"`
	Client       any                   `toml:"client"`
	SkipVerify   *bool                 `toml:"skip_verify"`
	Header       map[string]any        `toml:"header"`
	OverridePath bool                  `toml:"override_path"`
	Host         map[string]hostFields `toml:"host"`
}

// defaultServer is where a registry lives when hosts.toml does not say.
// Loopback registries are plain HTTP, as Docker and containerd treat them.
func defaultServer(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	if isLoopback(registry) {
		return "http://" + registry
	}
	return "https://" + registry
}

func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseHostsFile turns one hosts.toml (data may be nil: no file) into the
// ordered hosts of registry: mirrors in file order, then the upstream server.
// Relative file paths are relative to dir, the file's directory.
func parseHostsFile(registry, dir string, data []byte) ([]hostSpec, error) {
	var f hostsFile
	if len(data) > 0 {
		if err := decodeStrictOrWarn(data, &f, filepath.Join(dir, "hosts.toml")); err != nil {
			return nil, err
		}
	}
	order, err := hostOrder(data)
	if err != nil {
		return nil, err
	}
	var specs []hostSpec
	for _, name := range order {
		hf, ok := f.Host[name]
		if !ok {
			continue
		}
		s, err := newHostSpec(name, dir, hf)
		if err != nil {
			return nil, fmt.Errorf("host %q: %w", name, err)
		}
		specs = append(specs, s)
	}
	server := f.Server
	if server == "" {
		server = defaultServer(registry)
	}
	up, err := newHostSpec(server, dir, hostFields{
		Capabilities: f.Capabilities, CA: f.CA, Client: f.Client,
		SkipVerify: f.SkipVerify, Header: f.Header, OverridePath: f.OverridePath,
	})
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	up.upstream = true
	return dedupe(append(specs, up)), nil
}

// dedupe merges a host listed twice with the same settings (typically a
// mirror entry naming the server itself) into its first place, so a miss is
// not asked twice. The merged entry has the union of the capabilities and is
// the upstream if either was.
func dedupe(specs []hostSpec) []hostSpec {
	out := specs[:0:0]
	for _, s := range specs {
		i := slices.IndexFunc(out, func(o hostSpec) bool { return sameHost(o, s) })
		if i < 0 {
			out = append(out, s)
			continue
		}
		out[i].caps |= s.caps
		out[i].upstream = out[i].upstream || s.upstream
	}
	return out
}

func sameHost(a, b hostSpec) bool {
	return a.scheme == b.scheme && a.host == b.host && a.path == b.path && a.skipVerify == b.skipVerify &&
		slices.Equal(a.caFiles, b.caFiles) && slices.Equal(a.clientPairs, b.clientPairs) &&
		reflect.DeepEqual(a.header, b.header)
}

// decodeStrictOrWarn decodes data, warning about keys it does not know rather
// than failing: newer containerd versions add keys, and a node's config should
// not break a pull over one of them. A typo still shows in the log.
func decodeStrictOrWarn(data []byte, v any, path string) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var keys []string
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		slog.Warn("unknown keys in registry hosts file are ignored", "file", path, "keys", keys)
		err = toml.Unmarshal(data, v)
	}
	var derr *toml.DecodeError
	if errors.As(err, &derr) {
		row, col := derr.Position()
		return fmt.Errorf("line %d column %d: %s", row, col, derr.Error())
	}
	return err
}

// hostOrder lists the [host."..."] names in the order the file gives them;
// a decoded map has lost that order, and order is what hosts.toml means.
func hostOrder(data []byte) ([]string, error) {
	var order []string
	seen := map[string]bool{}
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			order = append(order, name)
		}
	}
	var table []string
	p := unstable.Parser{}
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e.Key())
			if len(table) >= 2 && table[0] == "host" {
				add(table[1])
			}
		case unstable.KeyValue:
			key := append(append([]string{}, table...), keyParts(e.Key())...)
			if len(key) >= 2 && key[0] == "host" {
				add(key[1])
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return order, nil
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func newHostSpec(rawURL, dir string, hf hostFields) (hostSpec, error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "https://" + rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return hostSpec{}, fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return hostSpec{}, fmt.Errorf("scheme %q is neither http nor https", u.Scheme)
	}
	if u.Host == "" {
		return hostSpec{}, errors.New("URL has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return hostSpec{}, errors.New("URL may have only a scheme, a host and a path")
	}
	s := hostSpec{scheme: u.Scheme, host: u.Host, path: strings.TrimSuffix(u.Path, "/")}
	// A path on a host is the prefix under which it serves the registry API;
	// override_path says the path already is the API root.
	if !hf.OverridePath && !strings.HasSuffix(s.path, "/v2") {
		s.path += "/v2"
	}
	if s.path == "" {
		return hostSpec{}, errors.New("override_path is set but the URL has no path")
	}
	if s.caps, err = parseCapabilities(hf.Capabilities); err != nil {
		return hostSpec{}, err
	}
	if s.caFiles, err = stringOrList(hf.CA, "ca"); err != nil {
		return hostSpec{}, err
	}
	for i, f := range s.caFiles {
		s.caFiles[i] = resolvePath(dir, f)
	}
	if s.clientPairs, err = parseClient(hf.Client); err != nil {
		return hostSpec{}, err
	}
	for i, p := range s.clientPairs {
		s.clientPairs[i][0] = resolvePath(dir, p[0])
		if p[1] != "" {
			s.clientPairs[i][1] = resolvePath(dir, p[1])
		}
	}
	if hf.SkipVerify != nil {
		s.skipVerify = *hf.SkipVerify
	}
	if s.header, err = parseHeader(hf.Header); err != nil {
		return hostSpec{}, err
	}
	return s, nil
}

func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func parseCapabilities(list []string) (Capabilities, error) {
	if list == nil {
		return capAll, nil
	}
	var c Capabilities
	for _, s := range list {
		switch s {
		case "pull":
			c |= CapPull
		case "resolve":
			c |= CapResolve
		case "push":
			c |= CapPush
		default:
			return 0, fmt.Errorf("unknown capability %q (want pull, resolve or push)", s)
		}
	}
	return c, nil
}

func stringOrList(v any, key string) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s: want a string or a list of strings, got %T in the list", key, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: want a string or a list of strings, got %T", key, v)
	}
}

// parseClient accepts "cert" (key in the same file), ["cert", ...] and
// [["cert", "key"], ...].
func parseClient(v any) ([][2]string, error) {
	const want = `client: want "cert.pem", a list of them, or a list of ["cert", "key"] pairs`
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return [][2]string{{v, ""}}, nil
	case []any:
		var out [][2]string
		for _, e := range v {
			switch e := e.(type) {
			case string:
				out = append(out, [2]string{e, ""})
			case []any:
				if len(e) != 2 {
					return nil, errors.New(want)
				}
				cert, ok1 := e[0].(string)
				key, ok2 := e[1].(string)
				if !ok1 || !ok2 {
					return nil, errors.New(want)
				}
				out = append(out, [2]string{cert, key})
			default:
				return nil, errors.New(want)
			}
		}
		return out, nil
	default:
		return nil, errors.New(want)
	}
}

func parseHeader(m map[string]any) (http.Header, error) {
	if len(m) == 0 {
		return nil, nil
	}
	h := http.Header{}
	for k, v := range m {
		vals, err := stringOrList(v, "header "+k)
		if err != nil {
			return nil, err
		}
		for _, s := range vals {
			h.Add(k, s)
		}
	}
	return h, nil
}
