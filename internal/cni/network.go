// Package cni attaches pods to the node's network with CNI plugins through
// libcni, the way kubelet-facing runtimes do: the first config file of the
// conf dir in lexical order names the network, ADD runs when a sandbox starts
// and DEL when it stops, and the plugins' results are cached on disk so a DEL
// after a daemon restart repeats the ADD's exact config and arguments.
//
// Error kinds: a missing or unusable config, or a plugin binary that is not
// installed, is FailedPrecondition (the node is not ready for pods; retrying
// alone will not help). A plugin that fails is Unavailable (a node-side
// condition such as an exhausted IP range or a busy lock, which kubelet's
// retry may get past), except CNI errors that say the config or arguments
// are wrong (codes 1, 2, 6, 7: FailedPrecondition; 4: InvalidArgument). A
// ctx deadline is DeadlineExceeded. Messages carry the plugin's own message.
package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"go.opentelemetry.io/otel/attribute"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/netns"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

// IfName is the pod's interface, as Kubernetes expects.
const IfName = "eth0"

// rollbackTimeout bounds the DEL that undoes a failed ADD. It has its own
// budget because the ADD may have failed by running out of the caller's.
const rollbackTimeout = 30 * time.Second

// DefaultCallTimeout bounds one ADD or DEL of the whole plugin chain unless
// SetCallTimeout says otherwise.
const DefaultCallTimeout = 4 * time.Minute

// Network runs the plugin chain of one conf dir. It is safe for concurrent
// use; Setup and Teardown of different pods run in parallel.
type Network struct {
	confDir     string
	pluginDirs  []string
	ifName      string
	cni         *libcni.CNIConfig
	callTimeout time.Duration

	mu      sync.Mutex // guards the fields below
	loaded  bool
	conf    *conf
	confErr error
	snap    snapshot
}

// New prepares a Network reading configs from confDir and plugin binaries
// from pluginDirs (searched in order). cacheDir holds libcni's result cache.
// It must live as long as what the plugins allocate: host-local keeps its
// leases on disk across reboots, so a cache on persistent storage (the root
// dir, not a tmpfs state dir) lets Attached and Teardown release, after a
// reboot, the addresses of pods that did not survive it.
// A missing or empty confDir is not an error here: Ready reports it, and a
// config that appears later is picked up.
func New(confDir string, pluginDirs []string, cacheDir string) (*Network, error) {
	for _, d := range append([]string{confDir, cacheDir}, pluginDirs...) {
		if !filepath.IsAbs(d) {
			return nil, errdefs.InvalidArgument("CNI: directory %q is not an absolute path", d)
		}
	}
	if len(pluginDirs) == 0 {
		return nil, errdefs.InvalidArgument("CNI: no plugin directories given")
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("CNI cache dir: %w", err)
	}
	dirs := slices.Clone(pluginDirs)
	return &Network{
		confDir:     confDir,
		pluginDirs:  dirs,
		ifName:      IfName,
		cni:         libcni.NewCNIConfigWithCacheDir(dirs, cacheDir, &pluginExec{}),
		callTimeout: DefaultCallTimeout,
	}, nil
}

// SetCallTimeout bounds each ADD, DEL or STATUS of the plugin chain, on top
// of the caller's deadline: a plugin that hangs is killed with its process
// group and the call fails as DeadlineExceeded. Call it before any use; 0
// keeps DefaultCallTimeout.
func (n *Network) SetCallTimeout(d time.Duration) {
	if d > 0 {
		n.callTimeout = d
	}
}

// Info describes the chosen network, for status output.
type Info struct {
	ConfDir    string
	File       string   // base name of the chosen file
	Name       string   // network name
	CNIVersion string   // config version
	Plugins    []string // plugin types in chain order
	Skipped    []string // unusable files before File, with the reason
}

// Info returns the network chosen now (reloading if the dir changed).
func (n *Network) Info() (Info, error) {
	c, err := n.current()
	if err != nil {
		return Info{ConfDir: n.confDir}, err
	}
	info := Info{ConfDir: n.confDir, File: c.file, Name: c.list.Name, CNIVersion: c.list.CNIVersion, Skipped: c.skipped}
	for _, p := range c.list.Plugins {
		info.Plugins = append(info.Plugins, p.Network.Type)
	}
	return info, nil
}

// Ready reports whether pods can be networked: a usable config exists and
// each plugin of its chain is installed. It is cheap enough for every CRI
// Status call (a directory read, small file reads, a stat per plugin); its
// error is the NetworkReady condition's message.
func (n *Network) Ready() error {
	c, err := n.current()
	if err != nil {
		return err
	}
	return n.checkPlugins(c)
}

func (n *Network) checkPlugins(c *conf) error {
	for _, p := range c.list.Plugins {
		path, err := invoke.FindInPath(p.Network.Type, n.pluginDirs)
		if err != nil {
			return errdefs.FailedPrecondition("CNI plugin %q of network %q (%s) is not installed in %v",
				p.Network.Type, c.list.Name, filepath.Join(n.confDir, c.file), n.pluginDirs)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o111 == 0 {
			return errdefs.FailedPrecondition("CNI plugin %s of network %q is not executable", path, c.list.Name)
		}
	}
	return nil
}

// Status is Ready plus, for configs of CNI 1.1 or later, the plugins' own
// STATUS answer (for example an IPAM daemon that is not up yet).
func (n *Network) Status(ctx context.Context) error {
	c, err := n.current()
	if err != nil {
		return err
	}
	if err := n.checkPlugins(c); err != nil {
		return err
	}
	if ok, _ := version.GreaterThanOrEqualTo(c.list.CNIVersion, "1.1.0"); !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.callTimeout)
	defer cancel()
	if err := n.cni.GetStatusNetworkList(ctx, c.list); err != nil {
		return classify(ctx, fmt.Errorf("CNI STATUS of network %q: %w", c.list.Name, err), err)
	}
	return nil
}

// Setup attaches the pod (CNI ADD) and returns what the plugins configured.
// On failure it runs DEL itself, so no address or host-side link is left
// behind; if that DEL fails too the error says so, and Teardown must be
// called later (a caller records the attempt before calling Setup anyway).
func (n *Network) Setup(ctx context.Context, pod PodNet) (_ *Result, err error) {
	ctx, span := tracing.Start(ctx, "cni.add", attribute.String("pod.id", pod.ID))
	defer func() { tracing.End(span, err) }()
	if err := pod.validate(); err != nil {
		return nil, err
	}
	if !netns.Exists(pod.NetnsPath) {
		return nil, errdefs.FailedPrecondition("pod network %s: %s is not a network namespace", pod.ID, pod.NetnsPath)
	}
	c, err := n.current()
	if err != nil {
		return nil, err
	}
	if err := n.checkPlugins(c); err != nil {
		return nil, err
	}
	// A second ADD would fail on the existing eth0, and its rollback DEL
	// would then tear down the first, working attachment.
	if cached, err := n.cni.GetCachedAttachments(pod.ID); err != nil {
		return nil, fmt.Errorf("CNI ADD of pod %s: read cache: %w", pod.ID, err)
	} else if len(cached) > 0 {
		return nil, errdefs.AlreadyExists("pod %s is already attached to network %q; Teardown first", pod.ID, cached[0].Network)
	}
	rt := n.runtimeConf(pod, pod.NetnsPath)
	actx, cancel := context.WithTimeout(ctx, n.callTimeout)
	defer cancel()
	res, err := n.cni.AddNetworkList(actx, c.list, rt)
	var out *Result
	if err == nil {
		if out, err = convert(res); err != nil {
			err = fmt.Errorf("plugin chain returned a bad result: %w", err)
		}
	}
	if err == nil {
		return out, nil
	}
	fail := classify(actx, fmt.Errorf("CNI ADD of pod %s/%s (%s) to network %q: %w", pod.Namespace, pod.Name, pod.ID, c.list.Name, err), err)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), min(rollbackTimeout, n.callTimeout))
	defer rcancel()
	if derr := n.cni.DelNetworkList(rctx, c.list, rt); derr != nil {
		// %v, not %w: the ADD's failure decides the kind.
		fail = fmt.Errorf("%w; undoing it failed too, call Teardown later: %v", fail, derr)
	}
	return nil, fail
}

// Teardown detaches the pod (CNI DEL). It is idempotent and succeeds when
// the netns is already gone (plugins then get no netns path and release what
// they hold on the host, such as IPs and port mappings) and when nothing is
// cached. It uses the config and arguments cached by the pod's ADD, so it
// works after a restart and after the conf dir changed; without a cache entry
// (a crash between ADD and caching, or a cache removed) it runs DEL with the
// current config. With neither there is nothing to undo and it returns nil.
func (n *Network) Teardown(ctx context.Context, pod PodNet) (err error) {
	ctx, span := tracing.Start(ctx, "cni.del", attribute.String("pod.id", pod.ID))
	defer func() { tracing.End(span, err) }()
	if err := checkID(pod.ID); err != nil {
		return err
	}
	nsPath := ""
	if pod.NetnsPath != "" && netns.Exists(pod.NetnsPath) {
		nsPath = pod.NetnsPath
	}
	cached, err := n.cni.GetCachedAttachments(pod.ID)
	if err != nil {
		return fmt.Errorf("CNI DEL of pod %s: read cache: %w", pod.ID, err)
	}
	var errs []error
	done := 0
	for _, a := range cached {
		list, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil || len(list.Plugins) == 0 {
			continue // unusable cache entry: the current config covers it
		}
		rt := &libcni.RuntimeConf{
			ContainerID:    pod.ID,
			NetNS:          nsPath,
			IfName:         a.IfName,
			Args:           a.CniArgs,
			CapabilityArgs: a.CapabilityArgs,
		}
		if err := n.del(ctx, pod, list, rt); err != nil {
			errs = append(errs, err)
		}
		done++
	}
	if done == 0 {
		c, err := n.current()
		if err != nil {
			return nil // no record of an attachment and no config: nothing to undo
		}
		if err := n.del(ctx, pod, c.list, n.runtimeConf(pod, nsPath)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attached lists the sandbox IDs with a cached attachment, that is an ADD
// that succeeded and has had no successful DEL since. At start-up, IDs here
// that have no sandbox record are leftovers of a crash to Teardown.
func (n *Network) Attached() ([]string, error) {
	all, err := n.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("read CNI cache: %w", err)
	}
	var ids []string
	for _, a := range all {
		if !slices.Contains(ids, a.ContainerID) {
			ids = append(ids, a.ContainerID)
		}
	}
	return ids, nil
}

func (n *Network) del(ctx context.Context, pod PodNet, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, cancel := context.WithTimeout(ctx, n.callTimeout)
	defer cancel()
	if err := n.cni.DelNetworkList(ctx, list, rt); err != nil {
		return classify(ctx, fmt.Errorf("CNI DEL of pod %s from network %q: %w", pod.ID, list.Name, err), err)
	}
	return nil
}

// classify gives msg (which wraps cause) its error kind; see the package
// comment.
func classify(ctx context.Context, msg, cause error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.Canceled) {
			return fmt.Errorf("%w: %w", msg, ctxErr)
		}
		return errdefs.WithKind(errdefs.ErrDeadlineExceeded, fmt.Errorf("%w: %w", msg, ctxErr))
	}
	var te *types.Error
	if errors.As(cause, &te) {
		switch te.Code {
		case types.ErrIncompatibleCNIVersion, types.ErrUnsupportedField, types.ErrDecodingFailure, types.ErrInvalidNetworkConfig:
			return errdefs.WithKind(errdefs.ErrFailedPrecondition, msg)
		case types.ErrInvalidEnvironmentVariables:
			return errdefs.WithKind(errdefs.ErrInvalidArgument, msg)
		}
	}
	return errdefs.WithKind(errdefs.ErrUnavailable, msg)
}
