package testkit

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

const (
	tokenPath    = "/token"
	tokenService = "testkit"
)

// tokenAuth is a minimal Docker token service living inside the registry:
// https://distribution.github.io/distribution/spec/auth/token/ (GET with basic
// credentials) and its OAuth2 variant (POST with a password or refresh-token
// grant). Tokens are opaque random strings valid for any repository until
// revoked; scopes are echoed in challenges but not enforced.
type tokenAuth struct {
	realm          string
	user, password string
	static         string // RegistryToken: accepted without a /token exchange
	refresh        string // IdentityToken: accepted by /token instead of a password

	mu     sync.Mutex
	issued map[string]bool
}

func newTokenAuth(realm, user, password string) *tokenAuth {
	return &tokenAuth{
		realm: realm, user: user, password: password,
		static:  randomToken(),
		refresh: randomToken(),
		issued:  map[string]bool{},
	}
}

func (a *tokenAuth) authorized(req *http.Request) bool {
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	if equal(tok, a.static) {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issued[tok]
}

func (a *tokenAuth) revoke() {
	a.mu.Lock()
	a.issued = map[string]bool{}
	a.mu.Unlock()
}

func (a *tokenAuth) challenge(w http.ResponseWriter, req *http.Request) {
	c := fmt.Sprintf(`Bearer realm=%q,service=%q`, a.realm, tokenService)
	if repo := repository(req.URL.Path); repo != "" {
		actions := "pull"
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			actions = "pull,push"
		}
		c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, actions)
	}
	if strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
		c += `,error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", c)
	writeRegistryError(w, req, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

// repository extracts <name> from /v2/<name>/{blobs,manifests,tags}/...
func repository(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return ""
	}
	for _, sep := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i]
		}
	}
	return ""
}

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
}

func (a *tokenAuth) serveToken(w http.ResponseWriter, req *http.Request) {
	var ok, offline bool
	switch req.Method {
	case http.MethodGet:
		ok = basicAuthOK(req, a.user, a.password)
		offline = req.URL.Query().Get("offline_token") == "true"
	case http.MethodPost:
		if err := req.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request")
			return
		}
		switch req.PostForm.Get("grant_type") {
		case "refresh_token":
			ok = equal(req.PostForm.Get("refresh_token"), a.refresh)
		case "password":
			ok = equal(req.PostForm.Get("username"), a.user) && equal(req.PostForm.Get("password"), a.password)
			offline = req.PostForm.Get("access_type") == "offline"
		default:
			oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="testkit token service"`)
		oauthError(w, http.StatusUnauthorized, "invalid_grant")
		return
	}
	tok := randomToken()
	a.mu.Lock()
	a.issued[tok] = true
	a.mu.Unlock()
	resp := tokenResponse{Token: tok, AccessToken: tok, ExpiresIn: 3600, IssuedAt: time.Now().UTC().Format(time.RFC3339)}
	if offline {
		resp.RefreshToken = a.refresh
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`+"\n", code)
}

func basicAuthOK(req *http.Request, user, password string) bool {
	u, p, ok := req.BasicAuth()
	return ok && equal(u, user) && equal(p, password)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
