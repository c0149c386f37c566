// Package cdi resolves Container Device Interface devices (a container's
// CDI_devices and its cdi.k8s.io/ annotations) against the spec files of
// [cdi] spec_dirs and applies their edits to an OCI spec. The spec files are
// read by tags.cncf.io/container-device-interface, whose cache watches the
// directories, so a vendor's new or changed file counts without a restart.
package cdi

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// DefaultSpecDirs are where vendors put CDI spec files; the later wins a
// conflict between files of the same device.
var DefaultSpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// Registry is the set of CDI devices the spec dirs define.
type Registry struct {
	cache *cdi.Cache
	log   *slog.Logger

	mu sync.Mutex
	// reported is the error text last logged for each spec file, so a
	// broken file is logged once per change rather than once per container.
	reported map[string]string
}

// New reads the spec dirs and keeps watching them. A dir that does not
// exist yet is fine: it is picked up once created. Broken spec files are
// logged with their path; the others work.
func New(dirs []string, log *slog.Logger) *Registry {
	// NewCache's error is always nil (kept for the library's API).
	cache, _ := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(true))
	r := &Registry{cache: cache, log: log, reported: map[string]string{}}
	r.logErrors()
	return r
}

// Close stops watching the spec dirs.
func (r *Registry) Close() {
	_ = r.cache.Configure(cdi.WithAutoRefresh(false))
}

// Devices returns the fully qualified names a container asks for: its
// CDI_devices in order, then those of its cdi.k8s.io/ annotations (sorted,
// as annotations have no order), each once.
func Devices(names []string, annotations map[string]string) ([]string, error) {
	var out []string
	for _, n := range names {
		if _, _, _, err := parser.ParseQualifiedName(n); err != nil {
			return nil, errdefs.InvalidArgument("CDI device %q: %v", n, err)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	_, annotated, err := cdi.ParseAnnotations(annotations)
	if err != nil {
		return nil, errdefs.InvalidArgument("CDI annotation: %v", err)
	}
	sort.Strings(annotated)
	for _, n := range annotated {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// Inject applies the edits of devices (fully qualified names) to s: device
// nodes with their cgroup rules, env, mounts and OCI hooks. A device that
// no spec file defines, or that two files of the same dir define, is
// ErrInvalidArgument naming it.
func (r *Registry) Inject(s *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	unresolved, err := r.cache.InjectDevices(s, devices...)
	r.logErrors()
	if len(unresolved) > 0 {
		return errdefs.InvalidArgument("%s", r.explain(unresolved))
	}
	if err != nil {
		return errdefs.InvalidArgument("inject CDI devices %s: %v", strings.Join(devices, ", "), err)
	}
	return nil
}

// explain says why each device is unresolved: a conflict the cache saw
// between spec files, or no definition at all.
func (r *Registry) explain(unresolved []string) string {
	errs := r.cache.GetErrors()
	var parts []string
	for _, d := range unresolved {
		why := fmt.Sprintf("CDI device %q is not defined by any spec file in %s", d, strings.Join(r.cache.GetSpecDirectories(), ", "))
		marker := fmt.Sprintf("conflicting device %q", d)
		for _, fileErrs := range errs {
			for _, e := range fileErrs {
				if strings.Contains(e.Error(), marker) {
					why = fmt.Sprintf("CDI device %q is ambiguous: %v", d, e)
				}
			}
		}
		parts = append(parts, why)
	}
	return strings.Join(parts, "; ")
}

// logErrors logs each broken spec file once per distinct error.
func (r *Registry) logErrors() {
	errs := r.cache.GetErrors()
	r.mu.Lock()
	defer r.mu.Unlock()
	for path, fileErrs := range errs {
		var texts []string
		for _, e := range fileErrs {
			texts = append(texts, e.Error())
		}
		text := strings.Join(texts, "; ")
		if r.reported[path] == text {
			continue
		}
		r.reported[path] = text
		if slices.Contains(r.cache.GetSpecDirectories(), path) {
			// Most nodes have no /etc/cdi: not a fault.
			r.log.Info("CDI spec dir not watched; read once it exists", "path", path, "err", text)
			continue
		}
		r.log.Warn("CDI spec file ignored", "path", path, "err", text)
	}
	for path := range r.reported {
		if _, ok := errs[path]; !ok {
			delete(r.reported, path)
		}
	}
}
