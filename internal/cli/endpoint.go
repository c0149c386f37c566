package cli

import (
	"net/url"
	"path/filepath"
	"strings"

	"github.com/cradle-runtime/cradle/internal/config"
	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// The environment variables crictl reads, so one exported setting serves both tools.
const (
	envRuntimeEndpoint = "CONTAINER_RUNTIME_ENDPOINT"
	envImageEndpoint   = "IMAGE_SERVICE_ENDPOINT"
)

// defaultEndpoint is where `cradle daemon` listens unless configured otherwise.
var defaultEndpoint = "unix://" + config.DefaultSocket

// endpoints are the resolved CRI addresses of one command run.
type endpoints struct {
	runtime, image string
}

// resolveEndpoints picks each endpoint from its flag, else its environment
// variable, else (runtime) the cradle socket or (image) the runtime endpoint,
// exactly the precedence crictl documents.
func resolveEndpoints(runtimeFlag, imageFlag string, getenv func(string) string) (endpoints, error) {
	rt := firstNonEmpty(runtimeFlag, getenv(envRuntimeEndpoint), defaultEndpoint)
	img := firstNonEmpty(imageFlag, getenv(envImageEndpoint), rt)
	var err error
	var eps endpoints
	if eps.runtime, err = normalizeEndpoint(rt); err != nil {
		return endpoints{}, err
	}
	if eps.image, err = normalizeEndpoint(img); err != nil {
		return endpoints{}, err
	}
	return eps, nil
}

// normalizeEndpoint turns an endpoint into the unix:// URL form kubelet's
// client dials. A bare socket path is accepted (crictl accepts it with a
// deprecation warning); other schemes are refused here rather than by the
// client's less helpful message, because kubelet's client dials unix only.
func normalizeEndpoint(ep string) (string, error) {
	ep = strings.TrimSpace(ep)
	if ep == "" {
		return "", errdefs.InvalidArgument("empty CRI endpoint")
	}
	if !strings.Contains(ep, "://") {
		abs, err := filepath.Abs(ep)
		if err != nil {
			return "", errdefs.InvalidArgument("endpoint %q: %v", ep, err)
		}
		return "unix://" + abs, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", errdefs.InvalidArgument("endpoint %q: %v", ep, err)
	}
	if u.Scheme != "unix" {
		return "", errdefs.InvalidArgument("endpoint %q: scheme %q is not supported, use unix:///path/to/socket", ep, u.Scheme)
	}
	if u.Host != "" || u.Path == "" {
		// unix://run/x.sock parses "run" as a host: almost always a missing slash.
		return "", errdefs.InvalidArgument("endpoint %q: want an absolute socket path, as in unix:///run/cradle/cradle.sock", ep)
	}
	return "unix://" + u.Path, nil
}

// socketPath is the filesystem path of a normalized unix:// endpoint.
func socketPath(ep string) string { return strings.TrimPrefix(ep, "unix://") }

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
