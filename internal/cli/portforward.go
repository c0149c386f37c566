package cli

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/portforward"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// defaultForwardAddress keeps forwarded ports off the network unless asked:
// whoever reaches the listener reaches into the pod.
const defaultForwardAddress = "127.0.0.1"

func newPortForwardCommand() *cobra.Command {
	var (
		addresses []string
		sf        streamFlags
	)
	cmd := criCommand(&cobra.Command{
		Use:   "port-forward [flags] POD [LOCAL_PORT:]REMOTE_PORT...",
		Short: "Forward local ports to a pod",
		Long: `Forward local TCP ports to ports inside a pod's network namespace, through
the CRI's PortForward and the runtime's streaming server, until Ctrl-C.
REMOTE_PORT alone listens on the same local port; LOCAL_PORT 0 or an empty one
(:8080) picks a free port, printed on the "Forwarding from" line. Listeners bind
127.0.0.1 unless --address says otherwise. POD is an ID or a unique ID prefix.`,
		Example: `  cradle port-forward 9c1e 8080
  cradle port-forward 9c1e 18080:80 :443
  cradle port-forward --address 0.0.0.0 9c1e 8080`,
		Args: minArgs(2, "a POD and at least one [LOCAL_PORT:]REMOTE_PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sf.check(); err != nil {
				return err
			}
			if sf.transport != transportSPDY {
				return errdefs.InvalidArgument("port-forward only speaks spdy: CRI streaming servers do not forward ports over WebSocket")
			}
			remotes, err := parseForwardPorts(args[1:])
			if err != nil {
				return err
			}
			if err := checkForwardAddresses(addresses); err != nil {
				return err
			}
			ctx := cmd.Context()
			c := clientFor(cmd)
			rt, err := c.Runtime(ctx)
			if err != nil {
				return err
			}
			id, err := resolvePodID(ctx, rt, args[0])
			if err != nil {
				return err
			}
			resp, err := rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: id, Port: remotes})
			if err != nil {
				return fmt.Errorf("port forward to pod %s: %w", id, rpcError(err))
			}
			u, err := streamURL(resp.GetUrl())
			if err != nil {
				return err
			}
			c.log.Debug("port-forward stream", "url", u.Redacted(), "transport", sf.transport)
			dialer, err := sf.dialer(u)
			if err != nil {
				return fmt.Errorf("port forward to pod %s: %w", id, err)
			}
			// The forwarder stops when ctx ends (Ctrl-C), which is the
			// normal way out: ForwardPorts then returns nil.
			pfCtx := ctx
			if !c.flags.debug {
				pfCtx = klog.NewContext(ctx, logr.New(forwardErrors{cmd.ErrOrStderr()}))
			}
			pf, err := portforward.NewOnAddressesForStreamingWithContext(pfCtx, dialer, addresses, args[1:], nil,
				cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return errdefs.WithKind(errdefs.ErrInvalidArgument, err)
			}
			if err := pf.ForwardPorts(); err != nil {
				return fmt.Errorf("port forward to pod %s: %w", id, err)
			}
			return nil
		},
	})
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringSliceVar(&addresses, "address", []string{defaultForwardAddress},
		"local `ADDRESSES` to listen on: IPs or localhost, comma-separated or repeated")
	sf.register(fl, false)
	return cmd
}

// parseForwardPorts checks each [LOCAL_PORT:]REMOTE_PORT and returns the
// remote ports, which the CRI request names.
func parseForwardPorts(specs []string) ([]int32, error) {
	remotes := make([]int32, 0, len(specs))
	for _, spec := range specs {
		local, remote, hasLocal := strings.Cut(spec, ":")
		if !hasLocal {
			remote = local
		}
		r, err := strconv.ParseUint(remote, 10, 16)
		if err != nil || r == 0 {
			return nil, errdefs.InvalidArgument("port %q: the remote port must be 1-65535", spec)
		}
		if hasLocal && local != "" {
			if _, err := strconv.ParseUint(local, 10, 16); err != nil {
				return nil, errdefs.InvalidArgument("port %q: the local port must be 0-65535", spec)
			}
		}
		remotes = append(remotes, int32(r))
	}
	return remotes, nil
}

func checkForwardAddresses(addresses []string) error {
	if len(addresses) == 0 {
		return errdefs.InvalidArgument("--address: at least one address is needed")
	}
	for _, a := range addresses {
		if a != "localhost" && net.ParseIP(a) == nil {
			return errdefs.InvalidArgument("--address %q: want an IP address or localhost", a)
		}
	}
	return nil
}

// forwardErrors is the logger the port forwarder reports per-connection
// failures to. client-go only logs them; without --debug the CLI's logger
// drops everything, which would leave "lost connection to pod" with no
// reason, so these few lines go to stderr.
type forwardErrors struct{ w io.Writer }

func (forwardErrors) Init(logr.RuntimeInfo)            {}
func (forwardErrors) Enabled(int) bool                 { return false }
func (forwardErrors) Info(int, string, ...any)         {}
func (s forwardErrors) WithValues(...any) logr.LogSink { return s }
func (s forwardErrors) WithName(string) logr.LogSink   { return s }
func (s forwardErrors) Error(err error, msg string, kv ...any) {
	ports := ""
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "localPort" || k == "remotePort" {
			ports += fmt.Sprintf(" %s=%v", k, kv[i+1])
		}
	}
	fmt.Fprintf(s.w, "Error: %s%s: %v\n", msg, ports, err)
}
