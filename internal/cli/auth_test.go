package cli

import (
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestAuthConfig(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("alice:s3cr:et"))
	for _, tc := range []struct {
		name  string
		flags authFlags
		stdin string
		want  *runtimeapi.AuthConfig
	}{
		{"anonymous", authFlags{}, "", nil},
		{"creds", authFlags{creds: "alice:s3cr:et"}, "", &runtimeapi.AuthConfig{Username: "alice", Password: "s3cr:et"}},
		{"creds without password", authFlags{creds: "alice"}, "", &runtimeapi.AuthConfig{Username: "alice"}},
		{"auth sent as given", authFlags{auth: b64}, "", &runtimeapi.AuthConfig{Auth: b64}},
		{"password from stdin", authFlags{username: "bob", passwordStdin: true}, "hunter2\r\nignored\n", &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2"}},
		{"password from stdin without newline", authFlags{username: "bob", passwordStdin: true}, "hunter2", &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := testEnv()
			env.stdin = strings.NewReader(tc.stdin)
			got, err := tc.flags.authConfig(env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuthConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags authFlags
		msg   string
	}{
		{"creds and auth", authFlags{creds: "a:b", auth: "YTpi"}, "exclude each other"},
		{"creds and username", authFlags{creds: "a:b", username: "a"}, "exclude each other"},
		{"empty user", authFlags{creds: ":pw"}, "username is empty"},
		{"auth not base64", authFlags{auth: "!!!"}, "not base64"},
		{"auth without colon", authFlags{auth: base64.StdEncoding.EncodeToString([]byte("justuser"))}, "USERNAME:PASSWORD"},
		{"password-stdin alone", authFlags{passwordStdin: true}, "needs --username"},
		{"no terminal to prompt", authFlags{username: "bob"}, "no terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _, _ := testEnv()
			_, err := tc.flags.authConfig(env, io.Discard)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want invalid argument containing %q", err, tc.msg)
			}
		})
	}
}
