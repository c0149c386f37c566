package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// createFlags choose whether create and run pull the container's image.
type createFlags struct {
	noPull, withPull bool
	auth             authFlags
}

func (f *createFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.noPull, "no-pull", false, "never pull the image: creating fails if it is missing")
	fl.BoolVar(&f.withPull, "with-pull", false, "pull the image even if it is present (to pick up a moved tag)")
	fl.StringVar(&f.auth.creds, "creds", "", "registry credentials for the pull as `USERNAME[:PASSWORD]`")
	fl.StringVar(&f.auth.auth, "auth", "", "registry credentials for the pull as `AUTH_STRING`, the base64 of USERNAME:PASSWORD")
	fl.StringVarP(&f.auth.username, "username", "u", "", "registry `USERNAME` for the pull; the password is asked for on the terminal")
}

func (f *createFlags) check() error {
	if f.noPull && f.withPull {
		return errdefs.InvalidArgument("--no-pull and --with-pull exclude each other")
	}
	return nil
}

func newCreateCommand() *cobra.Command {
	var f createFlags
	cmd := criCommand(&cobra.Command{
		Use:   "create [flags] POD CONTAINER_CONFIG POD_CONFIG",
		Short: "Create a new container in a pod sandbox",
		Long: `Create a container from a crictl container config file in the pod POD (an
ID or a unique ID prefix), whose config POD_CONFIG was given to runp, and print
the container's ID. The image is pulled first when it is missing (unlike
crictl, which pulls only when configured to); --no-pull never pulls and
--with-pull always does.`,
		Args: exactArgs(3, "POD, CONTAINER_CONFIG and POD_CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			cfg, err := loadContainerConfig(args[1])
			if err != nil {
				return err
			}
			podCfg, err := loadPodSandboxConfig(args[2])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c := clientFor(cmd)
			rt, err := c.Runtime(ctx)
			if err != nil {
				return err
			}
			podID, err := resolvePodID(ctx, rt, args[0])
			if err != nil {
				return err
			}
			id, err := createContainer(ctx, cmd, c, podID, cfg, podCfg, &f)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	})
	f.register(cmd.Flags())
	return cmd
}

func createContainer(ctx context.Context, cmd *cobra.Command, c *client, podID string,
	cfg *runtimeapi.ContainerConfig, podCfg *runtimeapi.PodSandboxConfig, f *createFlags) (string, error) {
	if !f.noPull {
		if err := ensureImage(ctx, cmd, c, cfg.GetImage(), podCfg, f); err != nil {
			return "", err
		}
	}
	rt, err := c.Runtime(ctx)
	if err != nil {
		return "", err
	}
	id, err := rt.CreateContainer(ctx, podID, cfg, podCfg)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.GetMetadata().GetName(), rpcError(err))
	}
	return id, nil
}

// ensureImage pulls the container's image unless the runtime has it
// already (or always, with --with-pull).
func ensureImage(ctx context.Context, cmd *cobra.Command, c *client, spec *runtimeapi.ImageSpec,
	podCfg *runtimeapi.PodSandboxConfig, f *createFlags) error {
	img, err := c.Image(ctx)
	if err != nil {
		return err
	}
	if !f.withPull {
		resp, err := img.ImageStatus(ctx, spec, false)
		if err != nil {
			return fmt.Errorf("image status of %q: %w", spec.GetImage(), rpcError(err))
		}
		if resp.GetImage() != nil {
			return nil
		}
	}
	auth, err := f.auth.authConfig(c.env, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	c.log.Debug("PullImage", "image", spec.GetImage(), "auth", auth != nil)
	if _, err := img.PullImage(ctx, spec, auth, podCfg); err != nil {
		return fmt.Errorf("pull %s: %w", spec.GetImage(), rpcError(err))
	}
	return nil
}

func newRunCommand() *cobra.Command {
	var (
		f       createFlags
		handler string
	)
	cmd := criCommand(&cobra.Command{
		Use:   "run [flags] CONTAINER_CONFIG POD_CONFIG",
		Short: "Run a new container inside a new pod sandbox",
		Long: `Run a pod sandbox from POD_CONFIG, create the container of CONTAINER_CONFIG
in it, start it and print the container's ID. If creating or starting the
container fails, the new pod is stopped and removed again.`,
		Args: exactArgs(2, "CONTAINER_CONFIG and POD_CONFIG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			cfg, err := loadContainerConfig(args[0])
			if err != nil {
				return err
			}
			podCfg, err := loadPodSandboxConfig(args[1])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c := clientFor(cmd)
			rt, err := c.Runtime(ctx)
			if err != nil {
				return err
			}
			podID, err := runPod(ctx, rt, podCfg, handler)
			if err != nil {
				return err
			}
			id, err := createContainer(ctx, cmd, c, podID, cfg, podCfg, &f)
			if err == nil {
				err = startContainer(ctx, rt, id)
			}
			if err != nil {
				return errors.Join(err, discardPod(ctx, rt, podID))
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	})
	f.register(cmd.Flags())
	cmd.Flags().StringVarP(&handler, "runtime", "r", "", "runtime `HANDLER` (RuntimeClass) to run the pod with; empty: the runtime's default")
	return cmd
}

// discardPod stops and removes a pod run's failure left behind, even when
// the failure was the user interrupting it.
func discardPod(ctx context.Context, rt internalapi.RuntimeService, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := rt.StopPodSandbox(ctx, id); err != nil {
		return fmt.Errorf("pod sandbox %s is left behind: stop: %w", id, rpcError(err))
	}
	if err := rt.RemovePodSandbox(ctx, id); err != nil {
		return fmt.Errorf("pod sandbox %s is left behind: remove: %w", id, rpcError(err))
	}
	return nil
}

func startContainer(ctx context.Context, rt internalapi.RuntimeService, id string) error {
	if err := rt.StartContainer(ctx, id); err != nil {
		return fmt.Errorf("start container %s: %w", id, rpcError(err))
	}
	return nil
}

func containerResolver(rt internalapi.RuntimeService) func(context.Context, string) (string, error) {
	return func(ctx context.Context, prefix string) (string, error) { return resolveContainerID(ctx, rt, prefix) }
}

// eachContainer is the body of the verbs that act on container arguments
// one by one and print each ID done.
func eachContainer(cmd *cobra.Command, args []string, verb string, do func(context.Context, internalapi.RuntimeService, string) error) error {
	ctx := cmd.Context()
	rt, err := clientFor(cmd).Runtime(ctx)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	return forEachID(ctx, cmd.ErrOrStderr(), args, containerResolver(rt), func(id string) error {
		if err := do(ctx, rt, id); err != nil {
			return err
		}
		fmt.Fprintln(w, id)
		return nil
	}, verb, "containers")
}

func newStartCommand() *cobra.Command {
	return criCommand(&cobra.Command{
		Use:   "start CONTAINER [CONTAINER...]",
		Short: "Start one or more created containers",
		Long:  `Start created containers. CONTAINER is an ID or a unique ID prefix.`,
		Args:  minArgs(1, "at least one CONTAINER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return eachContainer(cmd, args, "start", startContainer)
		},
	})
}

func newStopCommand() *cobra.Command {
	var timeout int64
	cmd := criCommand(&cobra.Command{
		Use:   "stop [flags] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Long: `Stop running containers: the runtime sends the stop signal and, after
--timeout seconds, SIGKILL. CONTAINER is an ID or a unique ID prefix.`,
		Args: minArgs(1, "at least one CONTAINER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return errdefs.InvalidArgument("--timeout must not be negative, got %d", timeout)
			}
			return eachContainer(cmd, args, "stop", func(ctx context.Context, rt internalapi.RuntimeService, id string) error {
				return stopContainer(ctx, rt, id, timeout)
			})
		},
	})
	// Seconds as an integer, crictl's flag, not the global --timeout duration.
	cmd.Flags().Int64VarP(&timeout, "timeout", "t", 0, "`SECONDS` to wait after the stop signal before killing the container")
	return cmd
}

func stopContainer(ctx context.Context, rt internalapi.RuntimeService, id string, timeout int64) error {
	if err := rt.StopContainer(ctx, id, timeout); err != nil {
		return fmt.Errorf("stop container %s: %w", id, rpcError(err))
	}
	return nil
}

func newRemoveCommand() *cobra.Command {
	var force, all bool
	cmd := criCommand(&cobra.Command{
		Use:   "rm [flags] CONTAINER [CONTAINER...]",
		Short: "Remove one or more containers",
		Long: `Remove containers. A running container is only removed with -f, which
stops it first (without grace period). CONTAINER is an ID or a unique ID prefix.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return &usageError{errors.New(`"cradle rm" needs a CONTAINER or --all`)}
			}
			if all {
				ctx := cmd.Context()
				rt, err := clientFor(cmd).Runtime(ctx)
				if err != nil {
					return err
				}
				ctrs, err := rt.ListContainers(ctx, nil)
				if err != nil {
					return fmt.Errorf("list containers: %w", rpcError(err))
				}
				if len(ctrs) == 0 && len(args) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No containers to remove")
					return nil
				}
				for _, c := range ctrs {
					args = append(args, c.GetId())
				}
			}
			return eachContainer(cmd, args, "remove", func(ctx context.Context, rt internalapi.RuntimeService, id string) error {
				return removeContainer(ctx, rt, id, force)
			})
		},
	})
	fl := cmd.Flags()
	fl.BoolVarP(&force, "force", "f", false, "stop running containers before removing them")
	fl.BoolVarP(&all, "all", "a", false, "remove all containers")
	return cmd
}

func removeContainer(ctx context.Context, rt internalapi.RuntimeService, id string, force bool) error {
	resp, err := rt.ContainerStatus(ctx, id, false)
	if err != nil {
		return fmt.Errorf("status of container %s: %w", id, rpcError(err))
	}
	if resp.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if !force {
			return errdefs.FailedPrecondition("container %s is running: stop it first or remove it with -f", id)
		}
		if err := stopContainer(ctx, rt, id, 0); err != nil {
			return err
		}
	}
	if err := rt.RemoveContainer(ctx, id); err != nil {
		return fmt.Errorf("remove container %s: %w", id, rpcError(err))
	}
	return nil
}
