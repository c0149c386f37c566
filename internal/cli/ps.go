package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	godigest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type psFlags struct {
	listFlags
	all        bool
	pod, image string
}

func newPsCommand() *cobra.Command {
	var f psFlags
	cmd := criCommand(&cobra.Command{
		Use:     "ps [flags]",
		Aliases: []string{"containers"},
		Short:   "List containers",
		Long: `List running containers (all of them with -a), newest first. --name is a
regular expression matched anywhere in the container's name; --image is an
image reference or ID the runtime resolves.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPs(cmd, &f) },
	})
	fl := cmd.Flags()
	fl.BoolVarP(&f.all, "all", "a", false, "list containers in every state, not only running ones")
	fl.StringVar(&f.id, "id", "", "only the container with this `ID` or ID prefix")
	fl.StringVarP(&f.pod, "pod", "p", "", "only containers of this `POD` (ID or unique ID prefix)")
	fl.StringVar(&f.name, "name", "", "only containers whose name matches this `REGEXP`")
	fl.StringVar(&f.image, "image", "", "only containers of this `IMAGE`")
	fl.StringArrayVar(&f.labels, "label", nil, "only containers with this `KEY=VALUE` label (repeatable)")
	fl.StringVarP(&f.state, "state", "s", "", "only containers in this `STATE`: created, running, exited or unknown")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "only print container IDs")
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, json or yaml")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "print full IDs and image digests")
	fl.BoolVarP(&f.latest, "latest", "l", false, "only the most recently created container")
	fl.IntVarP(&f.last, "last", "n", 0, "only the `N` most recently created containers")
	return cmd
}

var containerStates = map[string]runtimeapi.ContainerState{
	"created": runtimeapi.ContainerState_CONTAINER_CREATED,
	"running": runtimeapi.ContainerState_CONTAINER_RUNNING,
	"exited":  runtimeapi.ContainerState_CONTAINER_EXITED,
	"unknown": runtimeapi.ContainerState_CONTAINER_UNKNOWN,
}

func runPs(cmd *cobra.Command, f *psFlags) error {
	if err := checkFormat(f.output, formatTable, formatJSON, formatYAML); err != nil {
		return err
	}
	if err := checkLast(f.latest, f.last); err != nil {
		return err
	}
	filter := &runtimeapi.ContainerFilter{Id: f.id}
	switch {
	case f.state != "":
		st, ok := containerStates[strings.ToLower(f.state)]
		if !ok {
			return errdefs.InvalidArgument("--state %q: want created, running, exited or unknown", f.state)
		}
		filter.State = &runtimeapi.ContainerStateValue{State: st}
	case !f.all && !f.latest && f.last == 0:
		// Like crictl: -l and -n look at every state.
		filter.State = &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}
	}
	var err error
	if filter.LabelSelector, err = labelSelector(f.labels); err != nil {
		return err
	}
	nameOK, err := nameMatcher("--name", f.name)
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	c := clientFor(cmd)
	rt, err := c.Runtime(ctx)
	if err != nil {
		return err
	}
	if f.pod != "" {
		if filter.PodSandboxId, err = resolvePodID(ctx, rt, f.pod); err != nil {
			return err
		}
	}
	imageOK, err := imageMatcher(ctx, c, f.image)
	if err != nil {
		return err
	}
	all, err := rt.ListContainers(ctx, filter)
	if err != nil {
		return fmt.Errorf("list containers: %w", rpcError(err))
	}
	var ctrs []*runtimeapi.Container
	for _, ctr := range all {
		if nameOK(ctr.GetMetadata().GetName()) && imageOK(ctr) {
			ctrs = append(ctrs, ctr)
		}
	}
	ctrs = newestFirst(ctrs, (*runtimeapi.Container).GetCreatedAt, f.latest, f.last)

	w := cmd.OutOrStdout()
	switch {
	case f.output != formatTable:
		return writeProto(w, &runtimeapi.ListContainersResponse{Containers: ctrs}, f.output)
	case f.quiet:
		for _, ctr := range ctrs {
			fmt.Fprintln(w, ctr.GetId())
		}
		return nil
	}
	pods, err := podNames(ctx, c, ctrs)
	if err != nil {
		return err
	}
	t := newTable(w)
	t.row("CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD", "NAMESPACE")
	now := time.Now()
	for _, ctr := range ctrs {
		pod := pods[ctr.GetPodSandboxId()]
		t.row(shortID(ctr.GetId(), f.noTrunc), imageColumn(ctr, f.noTrunc), ago(ctr.GetCreatedAt(), now),
			stateName(ctr.GetState().String(), "CONTAINER_"), ctr.GetMetadata().GetName(),
			fmt.Sprint(ctr.GetMetadata().GetAttempt()), shortID(ctr.GetPodSandboxId(), f.noTrunc),
			pod.GetName(), pod.GetNamespace())
	}
	return t.flush()
}

// imageColumn is the image as the container was created with it; an image
// given by ID is cut like other IDs.
func imageColumn(ctr *runtimeapi.Container, noTrunc bool) string {
	image := ctr.GetImage().GetImage()
	if image == "" {
		image = ctr.GetImageRef()
	}
	if _, err := godigest.Parse(image); err == nil && !noTrunc {
		return truncateID(image)
	}
	return image
}

// podNames looks up the name and namespace of the containers' pods. The
// kubelet's container labels carry them, but containers made with crictl
// configs do not, so the pods are asked.
func podNames(ctx context.Context, c *client, ctrs []*runtimeapi.Container) (map[string]*runtimeapi.PodSandboxMetadata, error) {
	if len(ctrs) == 0 {
		return nil, nil
	}
	rt, err := c.Runtime(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list pod sandboxes: %w", rpcError(err))
	}
	m := make(map[string]*runtimeapi.PodSandboxMetadata, len(pods))
	for _, p := range pods {
		m[p.GetId()] = p.GetMetadata()
	}
	return m, nil
}

// imageMatcher returns the --image test. The argument matches a container
// that names it as given, or whose image the runtime resolves it to: a
// tag, a digest reference or an image ID all find the same containers.
func imageMatcher(ctx context.Context, c *client, image string) (func(*runtimeapi.Container) bool, error) {
	if image == "" {
		return func(*runtimeapi.Container) bool { return true }, nil
	}
	names := map[string]bool{image: true}
	img, err := c.Image(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: image}, false)
	if err != nil {
		return nil, fmt.Errorf("image status of %q: %w", image, rpcError(err))
	}
	if im := resp.GetImage(); im != nil {
		names[im.GetId()] = true
		for _, n := range append(im.GetRepoTags(), im.GetRepoDigests()...) {
			names[n] = true
		}
	}
	return func(ctr *runtimeapi.Container) bool {
		return names[ctr.GetImage().GetImage()] || names[ctr.GetImageRef()] || names[ctr.GetImageId()]
	}, nil
}
