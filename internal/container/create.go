package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cradle-runtime/cradle/internal/crashpoint"
	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/cradle-runtime/cradle/internal/events"
	"github.com/cradle-runtime/cradle/internal/oci"
	"github.com/cradle-runtime/cradle/internal/tracing"
)

// Create makes a container in a ready sandbox, in state created. The image
// must be present (ErrNotFound otherwise). A name already used in the
// sandbox is ErrAlreadyExists, except for kubelet's retry of the very same
// request: that gets the first call's result, also while the first call is
// still running. The create itself does not stop when ctx ends, so such a
// retry finds its work done.
func (m *Manager) Create(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sandboxCfg *runtimeapi.PodSandboxConfig) (string, error) {
	if err := validateConfig(cfg); err != nil {
		return "", err
	}
	// Entered before the readiness check: a StopPodSandbox from here on
	// cancels this create and waits for it (see sandboxGates).
	stopped, leave, err := m.gates.enter(sandboxID)
	if err != nil {
		return "", err
	}
	handedOff := false
	defer func() {
		if !handedOff {
			leave()
		}
	}()
	sb, err := m.cfg.Sandboxes.Sandbox(sandboxID)
	if err != nil {
		return "", err
	}
	if !sb.Ready {
		return "", errdefs.FailedPrecondition("sandbox %s is not ready", sandboxID)
	}
	if sandboxCfg == nil {
		sandboxCfg = sb.Config
	}
	if sandboxCfg.GetMetadata() == nil {
		return "", errdefs.InvalidArgument("sandbox config with metadata is required")
	}
	if d := sandboxCfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return "", errdefs.InvalidArgument("pod log directory %q is not absolute", d)
	}
	hash, data, err := configHash(sandboxID, cfg)
	if err != nil {
		return "", err
	}
	name := containerName(cfg, sandboxCfg)
	key := nameKey(sandboxID, name)
	r, first, err := m.reserve(key, hash)
	if err != nil {
		return "", err
	}
	if first {
		handedOff = true
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer leave()
			req := &request{sb: sb, pod: sandboxCfg, cfg: cfg, name: name, hash: hash, data: data}
			// Not the caller's ctx: a retry waits for this result.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), oci.DefaultCreateTimeout)
			defer cancel()
			stop := context.AfterFunc(m.ctx, cancel) // but Close ends it
			defer stop()
			stopPod := context.AfterFunc(stopped, cancel) // and so does the pod's stop
			defer stopPod()
			id, err := m.create(cctx, req)
			m.settle(key, r, id, err)
		}()
	}
	return wait(ctx, r)
}

func validateConfig(cfg *runtimeapi.ContainerConfig) error {
	switch {
	case cfg == nil:
		return errdefs.InvalidArgument("container config is required")
	case cfg.GetMetadata().GetName() == "":
		return errdefs.InvalidArgument("container metadata name is required")
	case strings.ContainsAny(cfg.GetMetadata().GetName(), "_/"):
		return errdefs.InvalidArgument("container name %q must not contain '_' or '/'", cfg.GetMetadata().GetName())
	case cfg.GetImage().GetImage() == "":
		return errdefs.InvalidArgument("container image is required")
	case filepath.IsAbs(cfg.GetLogPath()):
		return errdefs.InvalidArgument("container log_path %q must be relative to the pod's log directory", cfg.GetLogPath())
	}
	if p := cfg.GetLogPath(); p != "" && !filepath.IsLocal(p) {
		return errdefs.InvalidArgument("container log_path %q leaves the pod's log directory", p)
	}
	if _, err := stopSignal(cfg.GetStopSignal(), ""); err != nil {
		return err
	}
	for _, mnt := range cfg.GetMounts() {
		if !filepath.IsAbs(mnt.GetContainerPath()) {
			return errdefs.InvalidArgument("mount container_path %q is not absolute", mnt.GetContainerPath())
		}
	}
	return nil
}

// request is one Create's input, checked.
type request struct {
	sb   SandboxInfo
	pod  *runtimeapi.PodSandboxConfig
	cfg  *runtimeapi.ContainerConfig
	name string
	hash string
	data []byte
	// imageMounts are the host sources of the image volumes, once mounted.
	imageMounts map[string]string
}

// create runs the steps; on failure it undoes what it did.
func (m *Manager) create(ctx context.Context, req *request) (id string, err error) {
	rt, err := m.runtime(req.sb.RuntimeHandler)
	if err != nil {
		return "", err
	}
	img, ok, err := m.cfg.Images.Get(req.cfg.GetImage().GetImage())
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errdefs.NotFound("image %q not found: pull it first", req.cfg.GetImage().GetImage())
	}
	vols, err := m.resolveImageVolumes(req.cfg)
	if err != nil {
		return "", err
	}
	id = newID()
	c := &ctr{cfg: req.cfg, rec: record{
		ID: id, SandboxID: req.sb.ID, Name: req.name, Handler: req.sb.RuntimeHandler, State: Creating,
		Config: req.data, ConfigHash: req.hash,
		ImageID: img.ID, ImageName: imageName(img, req.cfg), ChainIDs: img.ChainIDs, ImageVolumes: vols,
		StopSignal: img.Config.Config.StopSignal,
		LogPath:    logPath(req.pod, req.cfg),
		CreatedAt:  time.Now(),
	}}
	if err := os.MkdirAll(m.dir(id), 0o700); err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	// The intent record: from here on, New undoes what a crash leaves.
	if err := note(m.dir(id), &c.rec); err != nil {
		os.RemoveAll(m.dir(id))
		return "", err
	}
	defer func() {
		if errors.Is(err, errCrash) {
			return
		}
		if err != nil {
			if uerr := m.undo(ctx, rt, c); uerr != nil {
				m.log.Warn("undo failed create; New retries it", "id", id, "err", uerr)
			}
			id = ""
		}
	}()
	// Step timings go to the debug log, as the pod's do.
	laps := make([]any, 0, 16)
	lap := time.Now()
	split := func(name string) {
		now := time.Now()
		laps = append(laps, name, now.Sub(lap))
		lap = now
	}
	defer func() {
		if err == nil {
			m.log.Debug("container create steps", append([]any{"id", id}, laps...)...)
		}
	}()
	if err := m.step("layers"); err != nil {
		return id, err
	}
	if err := m.acquire(c); err != nil {
		return id, err
	}
	split("layers")
	if err := m.step("rootfs"); err != nil {
		return id, err
	}
	if err := noteUserns(m.dir(id), req.sb.Namespaces.User, req.sb.Config); err != nil {
		return id, err
	}
	if err := mountRootfs(m.dir(id), m.rootfs(id), m.lowerDirs(c.rec.ChainIDs)); err != nil {
		return id, err
	}
	split("rootfs")
	if err := m.step("imagevolumes"); err != nil {
		return id, err
	}
	if req.imageMounts, err = m.mountImageVolumes(c); err != nil {
		return id, err
	}
	split("imagevolumes")
	if err := m.step("spec"); err != nil {
		return id, err
	}
	_, span := tracing.Start(ctx, "spec.generate", attribute.String("container.id", id))
	s, err := m.buildSpec(c, req, img)
	tracing.End(span, err)
	if err != nil {
		return id, err
	}
	releaseSync := func() {}
	if m.cfg.NRI != nil {
		// Until the container is listed: a plugin connecting meanwhile
		// finds it in its snapshot or hears this create.
		release := m.cfg.NRI.BlockSync()
		var once sync.Once
		releaseSync = func() { once.Do(release) }
		defer releaseSync()
		if err := m.cfg.NRI.Create(ctx, c.view(), s); err != nil {
			return id, err
		}
	}
	if err := m.idmapMounts(id, s); err != nil {
		return id, err
	}
	c.rec.User = userOf(s.Process)
	split("spec")
	if err := m.step("bundle"); err != nil {
		return id, err
	}
	if err := writeBundle(m.bundle(id), s); err != nil {
		return id, err
	}
	conmonLog, err := m.prepareLog(c)
	if err != nil {
		return id, err
	}
	split("bundle")
	if err := m.step("oci"); err != nil {
		return id, err
	}
	if _, err := rt.Create(ctx, oci.CreateOpts{
		ID: id, Bundle: m.bundle(id), LogPath: conmonLog, Terminal: s.Process.Terminal,
		Stdin: req.cfg.GetStdin(), StdinOnce: req.cfg.GetStdinOnce(),
	}); err != nil {
		return id, err
	}
	split("oci")
	m.releaseIdmapMounts(id)
	if err := m.step("record"); err != nil {
		return id, err
	}
	c.rec.State = Created
	// Noted, not fsynced (see note): after a power loss the intent record,
	// or none, makes start-up undo the container; nothing of it outlives
	// the reboot but the files that undo removes.
	if err := note(m.dir(id), &c.rec); err != nil {
		return id, err
	}
	split("record")
	crashpoint.Hit(crashpoint.CreateCreated)
	c.mu.Lock()
	c.spec = s
	c.ver = m.gen.Add(1)
	c.mu.Unlock()
	m.mu.Lock()
	m.containers[id] = c
	m.mu.Unlock()
	m.changed()
	releaseSync()
	m.emit(events.Created, c)
	if m.cfg.NRI != nil {
		m.cfg.NRI.PostCreate(ctx, c.view(), s)
	}
	return id, nil
}

// crashBefore names the crash point before a step of create: what the
// steps before it did is in place.
var crashBefore = map[string]string{
	"layers":       crashpoint.CreateRecorded,
	"imagevolumes": crashpoint.CreateRootfs,
	"oci":          crashpoint.CreateBundle,
	"record":       crashpoint.CreateOCI,
}

func (m *Manager) step(name string) error {
	crashpoint.Hit(crashBefore[name])
	if m.hook == nil {
		return nil
	}
	return m.hook(name)
}

// acquire takes references on the container's layers, all or none.
func (m *Manager) acquire(c *ctr) error {
	for i, l := range c.rec.ChainIDs {
		if _, ok := m.cfg.Layers.Acquire(l); !ok {
			if i > 0 {
				m.cfg.Layers.Release(c.rec.ChainIDs[:i]...)
			}
			return errdefs.NotFound("image %s: layer %s is not in the layer store", c.rec.ImageID, l)
		}
	}
	c.layers = true
	return nil
}

func (m *Manager) release(c *ctr) {
	if !c.layers {
		return
	}
	c.layers = false
	if err := m.cfg.Layers.Release(c.rec.ChainIDs...); err != nil {
		m.log.Warn("release layers", "id", c.rec.ID, "err", err)
	}
}
