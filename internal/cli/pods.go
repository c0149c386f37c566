package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newRunPodCommand() *cobra.Command {
	var handler string
	cmd := criCommand(&cobra.Command{
		Use:   "runp [flags] POD_CONFIG",
		Short: "Run a new pod sandbox",
		Long: `Run a pod sandbox from a crictl pod config file (JSON or YAML) and print
its ID. A config without metadata.uid gets a fresh one, so a file can be run
again once the previous pod is removed.`,
		Args: exactArgs(1, "a POD_CONFIG file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadPodSandboxConfig(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := runPod(ctx, rt, cfg, handler)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	})
	cmd.Flags().StringVarP(&handler, "runtime", "r", "", "runtime `HANDLER` (RuntimeClass) to run the pod with; empty: the runtime's default")
	return cmd
}

func runPod(ctx context.Context, rt internalapi.RuntimeService, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	id, err := rt.RunPodSandbox(ctx, cfg, handler)
	if err != nil {
		return "", fmt.Errorf("run pod sandbox %s/%s: %w", cfg.GetMetadata().GetNamespace(), cfg.GetMetadata().GetName(), rpcError(err))
	}
	return id, nil
}

func newPodsCommand() *cobra.Command {
	var (
		f         listFlags
		namespace string
	)
	cmd := criCommand(&cobra.Command{
		Use:     "pods [flags]",
		Aliases: []string{"sandboxes"},
		Short:   "List pod sandboxes",
		Long: `List pod sandboxes, newest first. --name and --namespace are regular
expressions matched anywhere in the pod's name and namespace.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runPods(cmd, &f, namespace) },
	})
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "only the pod with this `ID` or ID prefix")
	fl.StringVar(&f.name, "name", "", "only pods whose name matches this `REGEXP`")
	fl.StringVar(&namespace, "namespace", "", "only pods whose namespace matches this `REGEXP`")
	fl.StringArrayVar(&f.labels, "label", nil, "only pods with this `KEY=VALUE` label (repeatable)")
	fl.StringVarP(&f.state, "state", "s", "", "only pods in this `STATE`: ready or notready")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "only print pod IDs")
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, json or yaml")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "print full pod IDs")
	fl.BoolVarP(&f.latest, "latest", "l", false, "only the most recently created pod")
	fl.IntVarP(&f.last, "last", "n", 0, "only the `N` most recently created pods")
	return cmd
}

func runPods(cmd *cobra.Command, f *listFlags, namespace string) error {
	if err := checkFormat(f.output, formatTable, formatJSON, formatYAML); err != nil {
		return err
	}
	if err := checkLast(f.latest, f.last); err != nil {
		return err
	}
	filter := &runtimeapi.PodSandboxFilter{Id: f.id}
	switch strings.ToLower(f.state) {
	case "":
	case "ready":
		filter.State = &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}
	case "notready":
		filter.State = &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_NOTREADY}
	default:
		return errdefs.InvalidArgument("--state %q: want ready or notready", f.state)
	}
	var err error
	if filter.LabelSelector, err = labelSelector(f.labels); err != nil {
		return err
	}
	nameOK, err := nameMatcher("--name", f.name)
	if err != nil {
		return err
	}
	nsOK, err := nameMatcher("--namespace", namespace)
	if err != nil {
		return err
	}

	ctx := cmd.Context()
	rt, err := clientFor(cmd).Runtime(ctx)
	if err != nil {
		return err
	}
	all, err := rt.ListPodSandbox(ctx, filter)
	if err != nil {
		return fmt.Errorf("list pod sandboxes: %w", rpcError(err))
	}
	var pods []*runtimeapi.PodSandbox
	for _, p := range all {
		if nameOK(p.GetMetadata().GetName()) && nsOK(p.GetMetadata().GetNamespace()) {
			pods = append(pods, p)
		}
	}
	pods = newestFirst(pods, (*runtimeapi.PodSandbox).GetCreatedAt, f.latest, f.last)

	w := cmd.OutOrStdout()
	switch {
	case f.output != formatTable:
		return writeProto(w, &runtimeapi.ListPodSandboxResponse{Items: pods}, f.output)
	case f.quiet:
		for _, p := range pods {
			fmt.Fprintln(w, p.GetId())
		}
		return nil
	}
	t := newTable(w)
	t.row("POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME")
	now := time.Now()
	for _, p := range pods {
		handler := p.GetRuntimeHandler()
		if handler == "" {
			handler = "(default)"
		}
		md := p.GetMetadata()
		t.row(shortID(p.GetId(), f.noTrunc), ago(p.GetCreatedAt(), now),
			stateName(p.GetState().String(), "SANDBOX_"), md.GetName(), md.GetNamespace(),
			fmt.Sprint(md.GetAttempt()), handler)
	}
	return t.flush()
}

func newStopPodCommand() *cobra.Command {
	return criCommand(&cobra.Command{
		Use:   "stopp POD [POD...]",
		Short: "Stop one or more running pod sandboxes",
		Long:  `Stop pod sandboxes and every container in them. POD is an ID or a unique ID prefix.`,
		Args:  minArgs(1, "at least one POD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			return forEachID(ctx, cmd.ErrOrStderr(), args, podResolver(rt), func(id string) error {
				if err := rt.StopPodSandbox(ctx, id); err != nil {
					return fmt.Errorf("stop pod sandbox %s: %w", id, rpcError(err))
				}
				fmt.Fprintf(w, "Stopped sandbox %s\n", id)
				return nil
			}, "stop", "pod sandboxes")
		},
	})
}

func podResolver(rt internalapi.RuntimeService) func(context.Context, string) (string, error) {
	return func(ctx context.Context, prefix string) (string, error) { return resolvePodID(ctx, rt, prefix) }
}

func newRemovePodCommand() *cobra.Command {
	var force, all bool
	cmd := criCommand(&cobra.Command{
		Use:   "rmp [flags] POD [POD...]",
		Short: "Remove one or more pod sandboxes",
		Long: `Remove pod sandboxes and their containers. A ready pod is only removed
with -f, which stops it first. POD is an ID or a unique ID prefix.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return &usageError{errors.New(`"cradle rmp" needs a POD or --all`)}
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			if all {
				pods, err := rt.ListPodSandbox(ctx, nil)
				if err != nil {
					return fmt.Errorf("list pod sandboxes: %w", rpcError(err))
				}
				if len(pods) == 0 && len(args) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No pod sandboxes to remove")
					return nil
				}
				for _, p := range pods {
					args = append(args, p.GetId())
				}
			}
			return forEachID(ctx, cmd.ErrOrStderr(), args, podResolver(rt), func(id string) error {
				return removePod(ctx, rt, cmd.OutOrStdout(), id, force)
			}, "remove", "pod sandboxes")
		},
	})
	fl := cmd.Flags()
	fl.BoolVarP(&force, "force", "f", false, "stop ready pods before removing them")
	fl.BoolVarP(&all, "all", "a", false, "remove all pod sandboxes")
	return cmd
}

func removePod(ctx context.Context, rt internalapi.RuntimeService, w io.Writer, id string, force bool) error {
	if force {
		if err := rt.StopPodSandbox(ctx, id); err != nil {
			return fmt.Errorf("stop pod sandbox %s: %w", id, rpcError(err))
		}
	} else {
		resp, err := rt.PodSandboxStatus(ctx, id, false)
		if err != nil {
			return fmt.Errorf("status of pod sandbox %s: %w", id, rpcError(err))
		}
		if resp.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			return errdefs.New(errdefs.ErrFailedPrecondition, "pod sandbox %s is ready: stop it first (stopp) or remove it with -f", id)
		}
	}
	if err := rt.RemovePodSandbox(ctx, id); err != nil {
		return fmt.Errorf("remove pod sandbox %s: %w", id, rpcError(err))
	}
	fmt.Fprintf(w, "Removed sandbox %s\n", id)
	return nil
}
