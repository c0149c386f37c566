package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

// confExts are the file names kubelet-facing runtimes read from the conf dir.
var confExts = []string{".conf", ".conflist", ".json"}

// conf is the network chosen from the conf dir.
type conf struct {
	file    string // base name
	list    *libcni.NetworkConfigList
	skipped []string // "file: reason" for unusable files before file
}

// snapshot is what a load read: the candidate files up to and including the
// chosen one, with their contents. If those are unchanged, so is the choice:
// files after the chosen one cannot win. Comparing contents rather than
// mtimes also catches two writes within one timestamp tick; the files are a
// few hundred bytes, so the check is a directory read and a few small reads.
type snapshot struct {
	missing bool // the directory did not exist
	chose   bool // a usable file was found (the last of files)
	files   []seen
}

type seen struct {
	name string
	data []byte
}

func (s snapshot) unchanged(dir string) bool {
	names, err := candidates(dir)
	if err != nil {
		return s.missing && errors.Is(err, fs.ErrNotExist)
	}
	if s.missing || len(names) < len(s.files) || (!s.chose && len(names) != len(s.files)) {
		return false
	}
	for i, f := range s.files {
		if names[i] != f.name {
			return false
		}
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil || !bytes.Equal(data, f.data) {
			return false
		}
	}
	return true
}

// candidates lists the config file names in dir in lexical order.
func candidates(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !slices.Contains(confExts, filepath.Ext(e.Name())) {
			continue
		}
		// Stat follows symlinks, as the readers do.
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && fi.Mode().IsRegular() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// current returns the chosen network, reloading it when the conf dir changed
// since the last look. The check costs a few stat calls, so it runs on every
// use instead of a watcher.
func (n *Network) current() (*conf, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.loaded && n.snap.unchanged(n.confDir) {
		return n.conf, n.confErr
	}
	n.conf, n.snap, n.confErr = load(n.confDir)
	n.loaded = true
	return n.conf, n.confErr
}

// load picks the first file in lexical order that holds a usable network. A
// .conflist is a plugin chain; a .conf or .json holds one plugin and becomes
// a chain of one. Like CRI-O (and unlike containerd, which fails), an
// unusable file is skipped and named in the result, so a stray broken file
// does not take the node's network down while a good one exists.
func load(dir string) (*conf, snapshot, error) {
	var snap snapshot
	names, err := candidates(dir)
	if errors.Is(err, fs.ErrNotExist) {
		snap.missing = true
		return nil, snap, errdefs.FailedPrecondition("no CNI network config: directory %s does not exist", dir)
	}
	if err != nil {
		return nil, snap, fmt.Errorf("read CNI config dir: %w", err)
	}
	var skipped []string
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			// Vanished since the listing: the directory changed, and the
			// snapshot (which lacks it) says so next time.
			continue
		}
		snap.files = append(snap.files, seen{name: name, data: data})
		list, err := parse(dir, name, data)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		snap.chose = true
		return &conf{file: name, list: list, skipped: skipped}, snap, nil
	}
	if len(skipped) == 0 {
		return nil, snap, errdefs.FailedPrecondition("no CNI network config (%s) in %s", strings.Join(confExts, ", "), dir)
	}
	return nil, snap, errdefs.FailedPrecondition("no usable CNI network config in %s: %s", dir, strings.Join(skipped, "; "))
}

func parse(dir, name string, b []byte) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	var err error
	if filepath.Ext(name) == ".conflist" {
		list, err = libcni.NetworkConfFromBytes(b)
		if err == nil && !list.LoadOnlyInlinedPlugins {
			// CNI 1.1: more plugins may live in <dir>/<network name>/*.conf.
			// (Edits there alone are not noticed until the file changes.)
			var more []*libcni.PluginConfig
			more, err = libcni.NetworkPluginConfsFromFiles(dir, list.Name)
			list.Plugins = append(list.Plugins, more...)
		}
	} else {
		list, err = wrapSingle(b)
	}
	if err != nil {
		return nil, err
	}
	return list, checkList(list)
}

// wrapSingle turns a one-plugin .conf into a chain of one.
func wrapSingle(b []byte) (*libcni.NetworkConfigList, error) {
	plugin, err := libcni.NetworkPluginConfFromBytes(b)
	if err != nil {
		if strings.Contains(string(b), `"plugins"`) {
			err = fmt.Errorf("%w (a plugin chain belongs in a .conflist file)", err)
		}
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	list, err := json.Marshal(map[string]any{
		"cniVersion":             plugin.Network.CNIVersion,
		"name":                   plugin.Network.Name,
		"loadOnlyInlinedPlugins": true,
		"plugins":                []any{raw},
	})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(list)
}

func checkList(list *libcni.NetworkConfigList) error {
	if err := utils.ValidateNetworkName(list.Name); err != nil {
		return fmt.Errorf("network name %q: %w", list.Name, err)
	}
	if len(list.Plugins) == 0 {
		return errors.New("no plugins")
	}
	for i, p := range list.Plugins {
		if p.Network == nil || p.Network.Type == "" {
			return fmt.Errorf("plugin %d has no type", i)
		}
		if strings.ContainsRune(p.Network.Type, os.PathSeparator) {
			return fmt.Errorf("plugin %d: type %q is not a plain binary name", i, p.Network.Type)
		}
	}
	return nil
}
