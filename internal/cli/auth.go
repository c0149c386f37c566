package cli

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"golang.org/x/term"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// authFlags are the registry credential options of pull, as crictl has them
// plus --password-stdin for scripts.
type authFlags struct {
	creds         string // USERNAME[:PASSWORD]
	auth          string // base64 of USERNAME:PASSWORD
	username      string
	passwordStdin bool
}

// authConfig builds the AuthConfig sent with the pull, or nil for an
// anonymous pull. With --username alone the password is prompted for on a
// terminal (without echo) or read from stdin with --password-stdin.
func (f *authFlags) authConfig(env *environment, prompt io.Writer) (*runtimeapi.AuthConfig, error) {
	set := 0
	for _, s := range []string{f.creds, f.auth, f.username} {
		if s != "" {
			set++
		}
	}
	if set > 1 {
		return nil, errdefs.InvalidArgument("--creds, --auth and --username exclude each other")
	}
	if f.passwordStdin && f.username == "" {
		return nil, errdefs.InvalidArgument("--password-stdin needs --username")
	}
	switch {
	case f.creds != "":
		user, pass, _ := strings.Cut(f.creds, ":")
		if user == "" {
			return nil, errdefs.InvalidArgument("--creds: the username is empty (want USERNAME[:PASSWORD])")
		}
		return &runtimeapi.AuthConfig{Username: user, Password: pass}, nil
	case f.auth != "":
		if err := checkAuthString(f.auth); err != nil {
			return nil, err
		}
		return &runtimeapi.AuthConfig{Auth: f.auth}, nil
	case f.username != "":
		pass, err := readPassword(env, prompt, f.passwordStdin)
		if err != nil {
			return nil, err
		}
		return &runtimeapi.AuthConfig{Username: f.username, Password: pass}, nil
	}
	return nil, nil
}

// checkAuthString catches a mistyped --auth here rather than as a registry's
// "unauthorized" after a round trip; the string is still sent as given.
func checkAuthString(s string) error {
	dec, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return errdefs.InvalidArgument("--auth is not base64: %v", err)
		}
	}
	if user, _, ok := strings.Cut(string(dec), ":"); !ok || user == "" {
		return errdefs.InvalidArgument("--auth must be the base64 of USERNAME:PASSWORD")
	}
	return nil
}

func readPassword(env *environment, prompt io.Writer, fromStdin bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(env.stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("read the password from stdin: %w", err)
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	f, ok := env.stdin.(*os.File)
	if !ok || !env.isTerminal(f) {
		return "", errdefs.InvalidArgument("no terminal to ask for the password: use --password-stdin or --creds")
	}
	fmt.Fprint(prompt, "Enter Password: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read the password: %w", err)
	}
	return string(b), nil
}
