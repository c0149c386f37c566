package config

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// RestartOnly are the keys a running daemon cannot change: they name
// what it holds open (its directories and their locks, the CRI socket, the
// streaming listener, the pod network's plugins) or what every running
// container was made with (the cgroup driver). A reload keeps their old
// values and names them in a warning. A table key stands for every key in
// it.
var RestartOnly = []string{
	"root", "state", "socket", "log_format",
	"cni.conf_dir", "cni.plugin_dirs", "cni.call_timeout",
	"stream.address", "stream.port", "stream.tls_cert", "stream.tls_key",
	"runtime.cgroup_driver",
	// NRI's adaptation and the CDI cache are built once; CDI's spec files
	// themselves are watched, so a device change needs no restart.
	"cdi", "nri",
}

// Diff lists the dotted keys whose values differ between a and b, sorted
// (a handler added or removed is its table key, "runtime.handlers.crun").
func Diff(a, b Config) []string {
	ma, mb := flatten(a), flatten(b)
	var keys []string
	for k, v := range ma {
		if w, ok := mb[k]; !ok || !reflect.DeepEqual(v, w) {
			keys = append(keys, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			keys = append(keys, k)
		}
	}
	// A handler that came or went is one change, not one per field.
	out := keys[:0]
	for _, k := range keys {
		if h, ok := handlerKey(k); ok && (!hasPrefix(ma, h) || !hasPrefix(mb, h)) {
			k = h
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// KeepRestartOnly sets next's restart-only keys to cur's values and
// returns the keys that differed.
func KeepRestartOnly(cur, next *Config) []string {
	var changed []string
	for _, k := range Diff(*cur, *next) {
		if IsRestartOnly(k) {
			changed = append(changed, k)
		}
	}
	next.Root, next.State, next.Socket, next.LogFormat = cur.Root, cur.State, cur.Socket, cur.LogFormat
	next.CNI = cur.CNI
	next.CNI.PluginDirs = slices.Clone(cur.CNI.PluginDirs)
	next.Stream.Address, next.Stream.Port = cur.Stream.Address, cur.Stream.Port
	next.Stream.TLSCert, next.Stream.TLSKey = cur.Stream.TLSCert, cur.Stream.TLSKey
	next.Runtime.CgroupDriver = cur.Runtime.CgroupDriver
	next.CDI = cur.CDI
	next.CDI.SpecDirs = slices.Clone(cur.CDI.SpecDirs)
	next.NRI = cur.NRI
	return changed
}

// IsRestartOnly says whether key (or its table) only changes with a restart.
func IsRestartOnly(key string) bool {
	for _, r := range RestartOnly {
		if key == r || strings.HasPrefix(key, r+".") {
			return true
		}
	}
	return false
}

func handlerKey(k string) (string, bool) {
	const p = "runtime.handlers."
	if !strings.HasPrefix(k, p) {
		return "", false
	}
	rest := k[len(p):]
	// Handler names may hold dots ("kata.v2"): the field is the last part.
	i := strings.LastIndex(rest, ".")
	if i < 0 {
		return k, true
	}
	return p + rest[:i], true
}

func hasPrefix(m map[string]any, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix+".") {
			return true
		}
	}
	return false
}

// flatten maps each dotted key of c, as the TOML file spells it, to its
// value. Handler names are quoted by TOML when they hold dots; here they
// are joined as they are.
func flatten(c Config) map[string]any {
	data, err := c.Marshal()
	if err != nil {
		panic(fmt.Sprintf("config does not marshal: %v", err)) // plain types only
	}
	var raw map[string]any
	if err := toml.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil {
		panic(fmt.Sprintf("marshalled config does not decode: %v", err))
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := k
			if prefix != "" {
				key = prefix + "." + k
			}
			if sub, ok := v.(map[string]any); ok {
				walk(key, sub)
				continue
			}
			out[key] = v
		}
	}
	walk("", raw)
	return out
}

// CommentedDefaults renders the built-in defaults as a config file whose
// every line is a comment: it loads to the defaults, and an operator
// uncomments what they change (the package installs it as
// /etc/cradle/cradle.toml).
func CommentedDefaults() ([]byte, error) {
	out, err := Default().Marshal()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteString("# cradle configuration: the built-in defaults, all commented out.\n" +
		"# Uncomment a table header and the keys you change. Drop-ins in\n" +
		"# /etc/cradle/cradle.d/*.toml override this file. `cradle config` shows\n" +
		"# what is in force; `systemctl reload cradle` (SIGHUP) applies most\n" +
		"# changes without a restart (docs/operations.md lists which).\n\n")
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		trimmed := strings.TrimLeft(line, " \t")
		indent := line[:len(line)-len(trimmed)]
		switch {
		case trimmed == "":
			buf.WriteString("\n")
		case strings.HasPrefix(trimmed, "#"):
			buf.WriteString(indent + "#" + strings.TrimPrefix(trimmed, "#") + "\n")
		default:
			buf.WriteString(indent + "#" + trimmed + "\n")
		}
	}
	return buf.Bytes(), nil
}
