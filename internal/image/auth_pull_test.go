package image

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/testkit"
)

func TestPullAuth(t *testing.T) {
	basic := testkit.NewRegistry(t, testkit.WithBasicAuth("alice", "s3cret"))
	token := testkit.NewRegistry(t, testkit.WithTokenAuth("bob", "hunter2"))
	src := smallImage(t, "auth", testkit.Gzip)
	basic.MustPush(t, "private:latest", src)
	token.MustPush(t, "private:latest", src)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	tests := []struct {
		name string
		r    *testkit.Registry
		auth *Auth
		want error // nil: success
	}{
		{"basic anonymous", basic, nil, errdefs.ErrUnauthenticated},
		{"basic wrong password", basic, &Auth{Username: "alice", Password: "nope"}, errdefs.ErrUnauthenticated},
		{"basic", basic, &Auth{Username: "alice", Password: "s3cret"}, nil},
		{"basic auth field", basic, &Auth{Auth: b64("alice:s3cret")}, nil},
		{"basic for this server", basic, &Auth{Username: "alice", Password: "s3cret", ServerAddress: "http://" + basic.Host + "/v2/"}, nil},
		{"basic for another server", basic, &Auth{Username: "alice", Password: "s3cret", ServerAddress: "other.example.com"}, errdefs.ErrUnauthenticated},
		{"token anonymous", token, nil, errdefs.ErrUnauthenticated},
		{"token password", token, &Auth{Username: "bob", Password: "hunter2"}, nil},
		{"token wrong password", token, &Auth{Username: "bob", Password: "nope"}, errdefs.ErrUnauthenticated},
		{"identity token", token, &Auth{IdentityToken: token.IdentityToken()}, nil},
		{"bad identity token", token, &Auth{IdentityToken: "bogus"}, errdefs.ErrUnauthenticated},
		{"registry token", token, &Auth{RegistryToken: token.RegistryToken()}, nil},
		{"bad registry token", token, &Auth{RegistryToken: "bogus"}, errdefs.ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.r.ResetRequests()
			img, err := e.svc.Pull(context.Background(), tt.r.Ref("private"), tt.auth, nil)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if img.ID.String() != configDigest(t, src).String() {
					t.Errorf("ID %s", img.ID)
				}
				if tt.auth.RegistryToken != "" && tt.r.Requests("/token") != 0 {
					t.Error("a registry token must be sent as is, not exchanged")
				}
				return
			}
			wantKind(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.r.Host) {
				t.Errorf("message %q does not name the registry", err)
			}
			e.assertEmpty()
		})
	}
}

func TestPullAuthPermissionDenied(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t, testkit.WithBasicAuth("alice", "s3cret"))
	r.MustPush(t, "private:latest", smallImage(t, "x", testkit.Gzip))
	r.SetFault(testkit.FailStatus("/manifests/", http.StatusForbidden))
	_, err := e.svc.Pull(context.Background(), r.Ref("private"), &Auth{Username: "alice", Password: "s3cret"}, nil)
	wantKind(t, err, errdefs.ErrPermissionDenied)
}

// A bearer token that stops working mid-pull is exchanged again.
func TestPullRefreshesRevokedToken(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t, testkit.WithTokenAuth("bob", "hunter2"))
	src := smallImage(t, "x", testkit.Gzip)
	r.MustPush(t, "private:latest", src)
	var revoked atomic.Bool
	r.SetFault(testkit.FaultFunc(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.Contains(req.URL.Path, "/blobs/") && revoked.CompareAndSwap(false, true) {
			r.RevokeTokens()
		}
		return false
	}))
	if _, err := e.svc.Pull(context.Background(), r.Ref("private"), &Auth{Username: "bob", Password: "hunter2"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := r.Requests("/token"); n != 2 {
		t.Errorf("%d token exchanges, want 2 (initial and after revocation)", n)
	}
}

// Concurrent pulls with different credentials do not share a flight: one
// caller's credentials never authorise another's pull.
func TestConcurrentPullsDoNotShareCredentials(t *testing.T) {
	e := newEnv(t)
	r := testkit.NewRegistry(t, testkit.WithBasicAuth("alice", "s3cret"))
	src := smallImage(t, "x", testkit.Gzip)
	r.MustPush(t, "private:latest", src)
	release := make(chan struct{})
	r.SetFault(testkit.StallBlob(layerDigests(t, src)[0].Hex, 10, release))
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Pull(context.Background(), r.Ref("private"), &Auth{Username: "alice", Password: "s3cret"}, nil)
		done <- err
	}()
	waitFor(t, "the stalled pull", func() bool { return r.Requests(layerDigests(t, src)[0].Hex) == 1 })
	_, err := e.svc.Pull(context.Background(), r.Ref("private"), nil, nil)
	wantKind(t, err, errdefs.ErrUnauthenticated)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// OAuth2 token servers answer a refresh token they do not accept with 400
// invalid_grant (RFC 6749 section 5.2), not 401: still a refusal of the
// credentials, which kubelet must not mistake for an outage.
func TestPullIdentityTokenRefusedWithOAuthError(t *testing.T) {
	r := testkit.NewRegistry(t, testkit.WithTokenAuth("bob", "hunter2"))
	r.MustPush(t, "private:latest", smallImage(t, "x", testkit.Gzip))
	for _, tt := range []struct {
		oauth string
		want  error
	}{
		{"invalid_grant", errdefs.ErrUnauthenticated},
		{"invalid_client", errdefs.ErrUnauthenticated},
		{"invalid_scope", errdefs.ErrPermissionDenied},
		{"invalid_request", errdefs.ErrUnavailable},
	} {
		t.Run(tt.oauth, func(t *testing.T) {
			e := newEnv(t)
			var posts atomic.Int32
			r.SetFault(testkit.FaultFunc(func(w http.ResponseWriter, req *http.Request) bool {
				if req.URL.Path != "/token" || req.Method != http.MethodPost {
					return false
				}
				posts.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"error":%q,"error_description":"testkit says no"}`, tt.oauth)
				return true
			}))
			_, err := e.svc.Pull(context.Background(), r.Ref("private"), &Auth{IdentityToken: r.IdentityToken()}, nil)
			wantKind(t, err, tt.want)
			if posts.Load() == 0 {
				t.Fatal("the identity token was not exchanged with a POST")
			}
			if !strings.Contains(err.Error(), tt.oauth) || !strings.Contains(err.Error(), "testkit says no") {
				t.Errorf("message %q hides the token server's answer", err)
			}
			e.assertEmpty()
		})
	}
}
