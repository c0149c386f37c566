package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// remote talks to the hosts of one registry for one pull, trying them in
// order: a mirror that lacks the object, is down or refuses us hands over to
// the next host, and the most meaningful failure is reported if all fail.
type remote struct {
	ref   Ref
	hosts []hostClient
	// onRead, if set, sees every body byte received: manifests and configs
	// are progress too, for the stall watchdog.
	onRead func()
}

type hostClient struct {
	RegistryHost
	auth *authorizer
}

func newRemote(hosts []RegistryHost, ref Ref, creds *credentials) *remote {
	r := &remote{ref: ref}
	for _, h := range hosts {
		var c *credentials
		if creds.appliesTo(ref.Domain, h) {
			c = creds
		}
		r.hosts = append(r.hosts, hostClient{RegistryHost: h, auth: newAuthorizer(c, h.Client, ref.Path)})
	}
	return r
}

// get returns the 200 response for apiPath (e.g. "/library/busybox/blobs/sha256:...")
// from the first host with capability need that has it.
func (r *remote) get(ctx context.Context, need Capabilities, apiPath, accept, what string) (*http.Response, error) {
	var errs []error
	tried := 0
	for _, h := range r.hosts {
		if h.Capabilities&need == 0 {
			continue
		}
		tried++
		u := h.URL(apiPath)
		if !h.Upstream {
			// Tells a pull-through mirror which upstream registry is meant.
			u += "?ns=" + url.QueryEscape(r.ref.Domain)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, errdefs.InvalidArgument("%s: %v", what, err)
		}
		for k, vs := range h.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := h.auth.do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctxError(ctx)
			}
			if errors.Is(err, errdefs.ErrUnauthenticated) || errors.Is(err, errdefs.ErrPermissionDenied) || errors.Is(err, errdefs.ErrUnavailable) {
				errs = append(errs, err)
			} else {
				errs = append(errs, errdefs.Unavailable("registry %s unreachable: %v", h.Host, unwrapURLError(err)))
			}
			continue
		}
		if resp.StatusCode == http.StatusOK {
			if r.onRead != nil {
				resp.Body = &readNotifier{ReadCloser: resp.Body, onRead: r.onRead}
			}
			return resp, nil
		}
		errs = append(errs, statusError(resp, h, what, h.auth.creds != nil))
		drain(resp)
	}
	if tried == 0 {
		return nil, errdefs.New(errdefs.ErrFailedPrecondition, "%s: no host of registry %s is configured to serve it (check capabilities in hosts.toml)", what, r.ref.Domain)
	}
	return nil, mostMeaningful(errs)
}

// readNotifier calls onRead after every read that returned bytes.
type readNotifier struct {
	io.ReadCloser
	onRead func()
}

func (r *readNotifier) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.onRead()
	}
	return n, err
}

// statusError turns a registry's non-200 answer into an error of the right kind.
func statusError(resp *http.Response, h hostClient, what string, withCreds bool) error {
	msg := errorText(resp)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if withCreds {
			return errdefs.New(errdefs.ErrUnauthenticated, "registry %s refused the credentials for %s: %s", h.Host, what, msg)
		}
		return errdefs.New(errdefs.ErrUnauthenticated, "registry %s requires authentication for %s: %s", h.Host, what, msg)
	case http.StatusForbidden:
		return errdefs.New(errdefs.ErrPermissionDenied, "registry %s denied access to %s: %s", h.Host, what, msg)
	case http.StatusNotFound:
		return errdefs.NotFound("%s not found at registry %s: %s", what, h.Host, msg)
	case http.StatusTooManyRequests:
		return errdefs.New(errdefs.ErrResourceExhausted, "registry %s rate-limited %s: %s", h.Host, what, msg)
	}
	if resp.StatusCode >= 500 {
		return errdefs.Unavailable("registry %s failed %s: %s", h.Host, what, msg)
	}
	return fmt.Errorf("registry %s answered %s for %s: %s", h.Host, resp.Status, what, msg)
}

// mostMeaningful picks the error a person can act on: a refusal says more than
// "not found", which says more than "unreachable". Among equals the later host
// wins, since the upstream registry comes last and is the authority.
func mostMeaningful(errs []error) error {
	if len(errs) == 0 {
		return errdefs.Unavailable("no registry host answered")
	}
	rank := func(err error) int {
		switch {
		case errors.Is(err, errdefs.ErrUnauthenticated), errors.Is(err, errdefs.ErrPermissionDenied):
			return 4
		case errors.Is(err, errdefs.ErrNotFound):
			return 3
		case errors.Is(err, errdefs.ErrUnavailable):
			return 1
		default:
			return 2
		}
	}
	best := 0
	for i, err := range errs {
		if rank(err) >= rank(errs[best]) {
			best = i
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	var others []string
	for i, err := range errs {
		if i != best {
			others = append(others, err.Error())
		}
	}
	return fmt.Errorf("%w (other hosts: %s)", errs[best], strings.Join(others, "; "))
}

// unwrapURLError drops net/http's `Get "url":` prefix, which repeats what the
// message around it says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// ctxError is the reason a pull's context ended: the stall watchdog's
// ErrDeadlineExceeded, or the caller's cancellation.
func ctxError(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return ctx.Err()
}

// readAllLimit reads a manifest or config, refusing more than limit bytes.
func readAllLimit(r io.Reader, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errdefs.InvalidArgument("%s is larger than %d bytes", what, limit)
	}
	return b, nil
}

// registryErrors is the error body of the distribution API.
type registryErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (e registryErrors) String() string {
	parts := make([]string, 0, len(e.Errors))
	for _, x := range e.Errors {
		s := x.Code
		if x.Message != "" {
			s += ": " + x.Message
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

var kinds = []error{
	errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition,
	errdefs.ErrUnauthenticated, errdefs.ErrPermissionDenied, errdefs.ErrUnavailable, errdefs.ErrDeadlineExceeded,
	errdefs.ErrDataLoss, errdefs.ErrResourceExhausted, errdefs.ErrUnimplemented,
}

// kindOf returns the errdefs kind err carries, nil if none.
func kindOf(err error) error {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}
