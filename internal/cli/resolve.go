package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pod and container arguments may be any unique prefix of an ID, as in
// crictl. The runtime is asked with an ID filter first (the CRI lets
// runtimes match prefixes there, and cradle, containerd and CRI-O do); a
// runtime that only matches whole IDs answers nothing for a prefix, so then
// every object is listed and matched here.

// resolvePodID returns the full ID of the one pod sandbox whose ID starts
// with prefix.
func resolvePodID(ctx context.Context, rt internalapi.RuntimeService, prefix string) (string, error) {
	list := func(filter *runtimeapi.PodSandboxFilter) ([]string, error) {
		pods, err := rt.ListPodSandbox(ctx, filter)
		if err != nil {
			return nil, fmt.Errorf("list pod sandboxes: %w", rpcError(err))
		}
		ids := make([]string, 0, len(pods))
		for _, p := range pods {
			ids = append(ids, p.GetId())
		}
		return ids, nil
	}
	return resolveID("pod sandbox", prefix,
		func() ([]string, error) { return list(&runtimeapi.PodSandboxFilter{Id: prefix}) },
		func() ([]string, error) { return list(nil) })
}

// resolveContainerID returns the full ID of the one container, in any
// state, whose ID starts with prefix.
func resolveContainerID(ctx context.Context, rt internalapi.RuntimeService, prefix string) (string, error) {
	list := func(filter *runtimeapi.ContainerFilter) ([]string, error) {
		ctrs, err := rt.ListContainers(ctx, filter)
		if err != nil {
			return nil, fmt.Errorf("list containers: %w", rpcError(err))
		}
		ids := make([]string, 0, len(ctrs))
		for _, c := range ctrs {
			ids = append(ids, c.GetId())
		}
		return ids, nil
	}
	return resolveID("container", prefix,
		func() ([]string, error) { return list(&runtimeapi.ContainerFilter{Id: prefix}) },
		func() ([]string, error) { return list(nil) })
}

func resolveID(kind, prefix string, filtered, all func() ([]string, error)) (string, error) {
	if strings.TrimSpace(prefix) == "" {
		return "", errdefs.InvalidArgument("empty %s ID", kind)
	}
	ids, err := filtered()
	if err != nil {
		return "", err
	}
	matches := matchPrefix(ids, prefix)
	if len(matches) == 0 {
		if ids, err = all(); err != nil {
			return "", err
		}
		matches = matchPrefix(ids, prefix)
	}
	switch len(matches) {
	case 0:
		return "", errdefs.NotFound("no such %s %q", kind, prefix)
	case 1:
		return matches[0], nil
	}
	// A whole ID that is also the prefix of another still names one object.
	if slices.Contains(matches, prefix) {
		return prefix, nil
	}
	slices.Sort(matches)
	return "", errdefs.InvalidArgument("%s ID prefix %q is ambiguous: it matches %s", kind, prefix, strings.Join(matches, ", "))
}

// matchPrefix keeps the distinct IDs that start with prefix: the runtime's
// filter is not trusted to have done it.
func matchPrefix(ids []string, prefix string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// forEachID resolves each argument and runs do on it, going on after a
// failure so one bad ID does not leave the others untouched. With several
// arguments each failure is printed and the returned error only counts
// them; a single argument's failure is returned as it is.
func forEachID(ctx context.Context, stderr io.Writer, args []string,
	resolve func(context.Context, string) (string, error), do func(id string) error, verb, noun string) error {
	if len(args) == 1 {
		id, err := resolve(ctx, args[0])
		if err != nil {
			return err
		}
		return do(id)
	}
	failed := 0
	for _, arg := range args {
		id, err := resolve(ctx, arg)
		if err == nil {
			err = do(id)
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(stderr, "Error: %v\n", err)
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("unable to %s %d of %d %s", verb, failed, len(args), noun)
	}
	return nil
}
