package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/cradle-runtime/cradle/internal/proctree"
)

// FeaturesTimeout bounds `<runtime> features` at start-up: a wedged runtime
// binary must not keep the daemon from serving.
const FeaturesTimeout = 10 * time.Second

// maxFeaturesOutput bounds what a misbehaving runtime can make us buffer;
// runc's document is about 2 KiB.
const maxFeaturesOutput = 1 << 20

// DetectFeatures runs `<runtimePath> features` and returns the OCI features
// document it prints. Runtimes older than the command (runc < 1.1) fail
// here; callers treat that as "no optional feature", never as a fatal
// error, because kubelet only needs the answer to be truthful.
func DetectFeatures(ctx context.Context, runtimePath string) (*features.Features, error) {
	ctx, cancel := context.WithTimeout(ctx, FeaturesTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, runtimePath, "features")
	// A hung wrapper script is killed with its children (proctree.Kill).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return proctree.Kill(cmd.Process) }
	cmd.WaitDelay = commandWaitDelay
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxFeaturesOutput, 4096
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s features: no answer in time: %w", runtimePath, ctx.Err())
		}
		return nil, fmt.Errorf("%s features: %w: %s", runtimePath, err, strings.TrimSpace(stderr.String()))
	}
	if stdout.truncated {
		return nil, fmt.Errorf("%s features: output larger than %d bytes", runtimePath, maxFeaturesOutput)
	}
	var f features.Features
	if err := json.Unmarshal(stdout.Bytes(), &f); err != nil {
		return nil, fmt.Errorf("%s features: parse output: %w", runtimePath, err)
	}
	return &f, nil
}

// limitedBuffer keeps the first max bytes written and drops the rest, so
// the child never blocks on a full pipe. It holds its buffer in a field, not
// embedded: an embedded bytes.Buffer's ReadFrom would let io.Copy bypass
// the limit.
type limitedBuffer struct {
	buf       bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) Bytes() []byte  { return b.buf.Bytes() }
func (b *limitedBuffer) String() string { return b.buf.String() }

// featuresFile caches the runtime's features document in the handler's
// state dir: a daemon restart then need not run the binary before it
// serves (under load an exec costs seconds). The key is the binary's
// identity, so an upgraded runtime is asked again; a reboot clears it.
const featuresFile = "features.json"

type cachedFeatures struct {
	Binary   string             `json:"binary"`
	Identity string             `json:"identity"`
	Features *features.Features `json:"features"`
}

// binaryIdentity names the file behind path as it is now.
func binaryIdentity(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d:%d:%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec), nil
}

// Features returns what this handler's runtime binary supports: from the
// cache when the binary is the one that answered before, else by asking it
// (DetectFeatures) and caching the answer.
func (r *Runtime) Features(ctx context.Context) (*features.Features, error) {
	path := filepath.Join(r.cfg.StateDir, featuresFile)
	id, err := binaryIdentity(r.cfg.RuntimePath)
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", r.cfg.RuntimePath, err)
	}
	if data, err := os.ReadFile(path); err == nil {
		var c cachedFeatures
		if json.Unmarshal(data, &c) == nil && c.Binary == r.cfg.RuntimePath && c.Identity == id && c.Features != nil {
			return c.Features, nil
		}
	}
	f, err := DetectFeatures(ctx, r.cfg.RuntimePath)
	if err != nil {
		return nil, err
	}
	if data, err := json.Marshal(cachedFeatures{Binary: r.cfg.RuntimePath, Identity: id, Features: f}); err == nil {
		if err := writeFileAtomic(path, data); err != nil {
			r.log.Warn("cannot cache the runtime's features", "err", err)
		}
	}
	return f, nil
}
