package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logPollInterval is how often `logs -f` looks for new lines.
const logPollInterval = 200 * time.Millisecond

func newLogsCommand() *cobra.Command {
	var (
		follow, timestamps, previous bool
		tail                         int
		since                        string
	)
	cmd := criCommand(&cobra.Command{
		Use:   "logs [flags] CONTAINER",
		Short: "Print the logs of a container",
		Long: `Print a container's output from the CRI-format log file the runtime names in
its status, as crictl does: the file is read directly, so cradle must run on the
node, with the rights to read it. Lines the runtime split are joined again.
CONTAINER is an ID or a unique ID prefix.

--previous reads the log of the container's previous attempt, which kubelet
keeps beside it as <attempt-1>.log; -f does not apply to it. Rotated log files (<n>.log.<timestamp>)
are not read.`,
		Args: exactArgs(1, "a CONTAINER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sinceTime, err := parseSince(since, time.Now())
			if err != nil {
				return errdefs.WithKind(errdefs.ErrInvalidArgument, err)
			}
			if tail < -1 {
				return errdefs.InvalidArgument("--tail must be -1 (all) or more, got %d", tail)
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := resolveContainerID(ctx, rt, args[0])
			if err != nil {
				return err
			}
			resp, err := rt.ContainerStatus(ctx, id, false)
			if err != nil {
				return fmt.Errorf("status of container %s: %w", id, rpcError(err))
			}
			path, err := logPath(id, resp.GetStatus(), previous)
			if err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return errdefs.NotFound("log file %s of container %s does not exist", path, id)
				}
				return fmt.Errorf("open the log of container %s: %w", id, err)
			}
			defer f.Close()
			opts := logOptions{
				tail:         tail,
				since:        sinceTime,
				timestamps:   timestamps,
				follow:       follow && !previous,
				pollInterval: logPollInterval,
				running:      func(ctx context.Context) (bool, error) { return containerRunning(ctx, rt, id) },
			}
			skipped, err := copyLogs(ctx, f, opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if skipped > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "Warning: skipped %d line(s) of %s not in the CRI log format\n", skipped, path)
			}
			return err
		},
	})
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the container stops")
	fl.IntVar(&tail, "tail", -1, "only the last `N` lines (-1: all)")
	fl.StringVar(&since, "since", "", "only lines since a `TIME`: RFC 3339 (2024-01-02T15:04:05Z) or a duration back from now (10s, 5m)")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with the time it was logged (RFC 3339)")
	fl.BoolVarP(&previous, "previous", "p", false, "the log of the container's previous attempt")
	return cmd
}

// logPath is the container's log file, or with previous the one of its
// previous attempt under kubelet's naming (<log dir>/<name>/<attempt>.log).
func logPath(id string, st *runtimeapi.ContainerStatus, previous bool) (string, error) {
	path := st.GetLogPath()
	if path == "" {
		return "", errdefs.FailedPrecondition("container %s has no log file: its config set no log_path", id)
	}
	if !filepath.IsAbs(path) {
		return "", errdefs.FailedPrecondition("container %s: the runtime reports a relative log path %q", id, path)
	}
	if !previous {
		return path, nil
	}
	attempt := st.GetMetadata().GetAttempt()
	if attempt == 0 {
		return "", errdefs.NotFound("container %s is the first attempt: there is no previous log", id)
	}
	base := filepath.Base(path)
	if n, err := strconv.ParseUint(strings.TrimSuffix(base, ".log"), 10, 32); err != nil || !strings.HasSuffix(base, ".log") || uint32(n) != attempt {
		return "", errdefs.FailedPrecondition("container %s: log file %s is not named <attempt>.log as kubelet names it, so the previous one cannot be found", id, path)
	}
	return filepath.Join(filepath.Dir(path), fmt.Sprintf("%d.log", attempt-1)), nil
}

// containerRunning reports whether a followed container may still log. A
// runtime that is down for a moment (a restart) does not end the follow.
func containerRunning(ctx context.Context, rt internalapi.RuntimeService, id string) (bool, error) {
	resp, err := rt.ContainerStatus(ctx, id, false)
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			return true, nil
		}
		if status.Code(err) == codes.NotFound {
			return false, nil
		}
		return false, fmt.Errorf("status of container %s: %w", id, rpcError(err))
	}
	return resp.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING, nil
}
