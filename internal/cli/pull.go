package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type pullFlags struct {
	auth        authFlags
	podConfig   string
	annotations []string
	timeout     time.Duration
}

func newPullCommand() *cobra.Command {
	var f pullFlags
	cmd := criCommand(&cobra.Command{
		Use:   "pull [flags] IMAGE",
		Short: "Pull an image from a registry",
		Long: `Pull an image (NAME[:TAG|@DIGEST]) through the runtime and print its
reference. On a terminal a spinner shows the pull is running; the CRI reports
no progress, so it shows only the time spent.`,
		Example: `  cradle pull busybox
  cradle pull --creds user:secret registry.example.com/app:1.2
  echo "$TOKEN" | cradle pull -u user --password-stdin registry.example.com/app:1.2`,
		Args: exactArgs(1, "an IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error { return runPull(cmd, args[0], &f) },
	})
	fl := cmd.Flags()
	fl.StringVar(&f.auth.creds, "creds", "", "registry credentials as `USERNAME[:PASSWORD]`")
	fl.StringVar(&f.auth.auth, "auth", "", "registry credentials as `AUTH_STRING`, the base64 of USERNAME:PASSWORD")
	fl.StringVarP(&f.auth.username, "username", "u", "", "registry `USERNAME`; the password is asked for on the terminal")
	fl.BoolVar(&f.auth.passwordStdin, "password-stdin", false, "read the password for --username from stdin")
	fl.StringVar(&f.podConfig, "pod-config", "", "pod sandbox config (crictl `pod-config.[json|yaml]`) sent with the pull")
	fl.StringArrayVarP(&f.annotations, "annotation", "a", nil, "`KEY=VALUE` annotation of the image spec (repeatable)")
	fl.DurationVar(&f.timeout, "pull-timeout", 0, "give up after this long (0: no limit; --timeout does not apply to pulls)")
	return cmd
}

func runPull(cmd *cobra.Command, image string, f *pullFlags) error {
	c := clientFor(cmd)
	if strings.TrimSpace(image) == "" {
		return &usageError{errdefs.InvalidArgument("the image name is empty")}
	}
	if f.timeout < 0 {
		return errdefs.InvalidArgument("--pull-timeout must not be negative")
	}
	auth, err := f.auth.authConfig(c.env, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	var sandbox *runtimeapi.PodSandboxConfig
	if f.podConfig != "" {
		if sandbox, err = loadPodSandboxConfig(f.podConfig); err != nil {
			return err
		}
	}
	ann, err := parseKeyValues("--annotation", f.annotations)
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	img, err := c.Image(ctx)
	if err != nil {
		return err
	}
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	spec := &runtimeapi.ImageSpec{Image: image, Annotations: ann}
	c.log.Debug("PullImage", "image", image, "annotations", ann, "auth", auth != nil, "sandbox", sandbox != nil)

	out := cmd.OutOrStdout()
	var sp *spinner
	if c.env.isTerminal(out) {
		sp = startSpinner(out, "Pulling "+image, spinnerInterval)
	}
	ref, err := img.PullImage(ctx, spec, auth, sandbox)
	if sp != nil {
		sp.Stop()
	}
	if err != nil {
		if f.timeout > 0 && pullTimedOut(ctx, err) {
			return errdefs.New(errdefs.ErrDeadlineExceeded, "pull %s: not done after --pull-timeout %s", image, f.timeout)
		}
		return fmt.Errorf("pull %s: %w", image, rpcError(err))
	}
	fmt.Fprintf(out, "Image is up to date for %s\n", ref)
	return nil
}

// parseKeyValues parses repeated KEY=VALUE flags.
func parseKeyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, errdefs.InvalidArgument("%s %q: want KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// pullTimedOut tells whether err is --pull-timeout running out. The runtime
// gets the deadline too and may report DeadlineExceeded a moment before the
// client's own context expires, so a DeadlineExceeded status that arrives
// at the deadline counts as well.
func pullTimedOut(ctx context.Context, err error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && status.Code(err) == codes.DeadlineExceeded && time.Until(deadline) < 100*time.Millisecond
}
