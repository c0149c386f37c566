package image

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// credentials is an Auth after validation, for one pull.
type credentials struct {
	username, password string
	identityToken      string // OAuth2 refresh token, exchanged at the token server
	registryToken      string // bearer token, sent as is
	server             string // host the credentials are for; "" = every host
}

func newCredentials(a *Auth) (*credentials, error) {
	if a == nil {
		return nil, nil
	}
	c := &credentials{
		username: a.Username, password: a.Password,
		identityToken: a.IdentityToken, registryToken: a.RegistryToken,
	}
	if a.Auth != "" && c.username == "" && c.password == "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.Auth))
		if err != nil {
			return nil, errdefs.InvalidArgument("auth: the auth field is not base64: %v", err)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errdefs.InvalidArgument("auth: the auth field does not decode to user:password")
		}
		c.username, c.password = user, pass
	}
	if c.username == "" && c.password == "" && c.identityToken == "" && c.registryToken == "" {
		return nil, nil
	}
	if a.ServerAddress != "" {
		c.server = normaliseServerAddress(a.ServerAddress)
	}
	return c, nil
}

// normaliseServerAddress reduces what Docker config files and kubelet put in
// server_address ("https://index.docker.io/v1/", "registry:5000") to host[:port],
// with Docker Hub's many names folded into docker.io.
func normaliseServerAddress(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s, _, _ = strings.Cut(s, "/")
	s = strings.ToLower(s)
	switch s {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return s
}

// appliesTo says whether these credentials go to host h of registry.
func (c *credentials) appliesTo(registry string, h RegistryHost) bool {
	if c == nil {
		return false
	}
	if c.server == "" {
		return true
	}
	if h.Upstream && c.server == registry {
		return true
	}
	return normaliseServerAddress(h.Host) == c.server
}

// key identifies the credentials for de-duplicating concurrent pulls without
// keeping the secret itself in a map key.
func (c *credentials) key() string {
	if c == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{c.username, c.password, c.identityToken, c.registryToken, c.server}, "\x00")))
	return hex.EncodeToString(sum[:])
}

// authorizer authenticates the requests of one pull to one host: it answers
// Basic and Bearer challenges (the Docker token protocol) and keeps the
// resulting Authorization header for later requests.
type authorizer struct {
	creds  *credentials // nil: anonymous
	client *http.Client
	scope  string // repository:<path>:pull

	mu     sync.Mutex
	header string
}

func newAuthorizer(creds *credentials, client *http.Client, repo string) *authorizer {
	a := &authorizer{creds: creds, client: client, scope: "repository:" + repo + ":pull"}
	if creds != nil && creds.registryToken != "" {
		a.header = "Bearer " + creds.registryToken
	}
	return a
}

func (a *authorizer) current() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.header
}

// do sends req, answering one authentication challenge. The caller owns the
// returned response; a 401 that could not be answered is returned as is.
func (a *authorizer) do(req *http.Request) (*http.Response, error) {
	sent := a.current()
	if sent != "" {
		req.Header.Set("Authorization", sent)
	}
	resp, err := a.client.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenges := parseChallenges(resp.Header.Values("WWW-Authenticate"))
	if len(challenges) == 0 {
		return resp, nil
	}
	hdr, err := a.answer(req.Context(), req.URL, sent, challenges)
	if err != nil {
		drain(resp)
		return nil, err
	}
	if hdr == "" || hdr == sent {
		return resp, nil
	}
	drain(resp)
	retry := req.Clone(req.Context())
	retry.Header.Set("Authorization", hdr)
	return a.client.Do(retry)
}

// answer returns the Authorization header for the challenges, fetching a token
// unless another request already refreshed it since sent was used.
func (a *authorizer) answer(ctx context.Context, target *url.URL, sent string, challenges []challenge) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.header != sent {
		return a.header, nil
	}
	for _, ch := range challenges {
		switch ch.scheme {
		case "bearer":
			tok, err := a.fetchToken(ctx, target, ch.params)
			if err != nil {
				return "", err
			}
			if tok != "" {
				a.header = "Bearer " + tok
			}
			return a.header, nil
		case "basic":
			if a.creds == nil || (a.creds.username == "" && a.creds.password == "") {
				return "", nil
			}
			a.header = "Basic " + base64.StdEncoding.EncodeToString([]byte(a.creds.username+":"+a.creds.password))
			return a.header, nil
		}
	}
	return "", nil
}

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// fetchToken runs the token exchange at the challenge's realm: an OAuth2
// refresh-token POST for an identity token, else a GET with Basic credentials
// (or none, for anonymous pulls of public images).
func (a *authorizer) fetchToken(ctx context.Context, target *url.URL, params map[string]string) (string, error) {
	if a.creds != nil && a.creds.registryToken != "" {
		// The registry refused the token the caller handed us; there is
		// nothing to exchange.
		return "", nil
	}
	realm, err := url.Parse(params["realm"])
	if err != nil || realm.Host == "" || (realm.Scheme != "https" && realm.Scheme != "http") {
		return "", errdefs.Unavailable("registry %s: malformed bearer challenge realm %q", target.Host, params["realm"])
	}
	// Never send credentials to a plain-HTTP token server for a TLS registry.
	if realm.Scheme == "http" && target.Scheme == "https" {
		return "", errdefs.Unavailable("registry %s: refusing plain-HTTP token server %s", target.Host, realm.Redacted())
	}
	scopes := []string{a.scope}
	if s := params["scope"]; s != "" && s != a.scope {
		scopes = append(scopes, s)
	}
	var req *http.Request
	if a.creds != nil && a.creds.identityToken != "" {
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {a.creds.identityToken},
			"service":       {params["service"]},
			"client_id":     {"cradle"},
			"scope":         {strings.Join(scopes, " ")},
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := realm.Query()
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err != nil {
			return "", err
		}
		if a.creds != nil && (a.creds.username != "" || a.creds.password != "") {
			req.SetBasicAuth(a.creds.username, a.creds.password)
		}
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", errdefs.Unavailable("registry %s: token server %s unreachable: %v", target.Host, realm.Host, err)
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusBadRequest {
		return "", oauthError(resp, target.Host, realm.Host)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return "", errdefs.New(errdefs.ErrUnauthenticated, "registry %s: token server %s refused the credentials: %s", target.Host, realm.Host, errorText(resp))
	case resp.StatusCode == http.StatusForbidden:
		return "", errdefs.New(errdefs.ErrPermissionDenied, "registry %s: token server %s denied access: %s", target.Host, realm.Host, errorText(resp))
	case resp.StatusCode != http.StatusOK:
		return "", errdefs.Unavailable("registry %s: token server %s answered %s", target.Host, realm.Host, resp.Status)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", errdefs.Unavailable("registry %s: token server %s sent a malformed answer: %v", target.Host, realm.Host, err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", errdefs.Unavailable("registry %s: token server %s sent no token", target.Host, realm.Host)
	}
	return tok, nil
}

// oauthError classifies a token server's 400. OAuth2 servers (RFC 6749
// section 5.2) answer a revoked or unknown refresh token, or a client they
// refuse, with 400 rather than 401; that is a refusal, not an outage.
func oauthError(resp *http.Response, registry, server string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(b, &e)
	msg := e.Error
	if e.Description != "" {
		msg += ": " + e.Description
	}
	switch e.Error {
	case "invalid_grant", "invalid_client", "unauthorized_client":
		return errdefs.New(errdefs.ErrUnauthenticated, "registry %s: token server %s refused the credentials: %s", registry, server, msg)
	case "invalid_scope":
		return errdefs.New(errdefs.ErrPermissionDenied, "registry %s: token server %s denied access: %s", registry, server, msg)
	}
	if msg == "" {
		msg = resp.Status
	}
	return errdefs.Unavailable("registry %s: token server %s rejected the token request: %s", registry, server, msg)
}

// drain reads a little of a discarded body so its connection can be reused.
func drain(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func errorText(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(b))
	var e registryErrors
	if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
		msg = e.String()
	} else if len(msg) > 200 || msg == "" {
		msg = resp.Status
	}
	return msg
}
