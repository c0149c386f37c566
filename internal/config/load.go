package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Duration is a time.Duration written in TOML as a string ("90s", "2m").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. \"30s\", \"2m\"): %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Overrides are the command-line flags that win over every file.
type Overrides struct {
	Socket, Root, State, LogLevel string
}

// Loaded is a configuration with where each key came from, so errors can name
// the file that set a bad value.
type Loaded struct {
	Config
	// Files are the files read, in order.
	Files []string
	// origin maps a dotted key ("runtime.cgroup_driver") to the file that set it last.
	origin map[string]string
	// line maps a dotted key, or a table's, to its line in that file.
	line map[string]int
}

// Origin returns where key was set: a file path, "flag --x" or "default".
func (l *Loaded) Origin(key string) string {
	if o, ok := l.origin[key]; ok {
		return o
	}
	// A key left unset inside a table a file declared ([runtime.handlers.x]
	// without path) belongs to that file.
	for prefix := key; strings.Contains(prefix, "."); {
		prefix = prefix[:strings.LastIndex(prefix, ".")]
		for k, o := range l.origin {
			if strings.HasPrefix(k, prefix+".") {
				return o
			}
		}
	}
	return "built-in default"
}

// DropInDir returns the drop-in directory of a config file:
// /etc/cradle/cradle.toml → /etc/cradle/cradle.d.
func DropInDir(file string) string {
	return strings.TrimSuffix(file, filepath.Ext(file)) + ".d"
}

// Load builds the effective configuration from defaults, file (DefaultFile if
// empty; a missing default file is fine, a missing named one is not), its
// drop-ins and the overrides, then validates it.
func Load(file string, ov Overrides) (*Loaded, error) {
	return load(file, DefaultFile, ov)
}

// load is Load with the default file as a parameter, so tests can run the
// "no file at all" path without depending on the host's /etc.
func load(file, defaultFile string, ov Overrides) (*Loaded, error) {
	explicit := file != ""
	if !explicit {
		file = defaultFile
	}
	l := &Loaded{Config: Default(), origin: map[string]string{}, line: map[string]int{}}

	files := []string{}
	if _, err := os.Stat(file); err == nil {
		files = append(files, file)
	} else if explicit || !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	dropIns, err := filepath.Glob(filepath.Join(DropInDir(file), "*.toml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(dropIns)
	files = append(files, dropIns...)

	for _, f := range files {
		if err := l.decodeFile(f); err != nil {
			return nil, err
		}
	}
	l.Files = files
	l.applyOverrides(ov)
	if err := l.validate(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Loaded) decodeFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l.Config); err != nil {
		return fileError(path, err)
	}
	// A second, untyped pass records which keys this file set.
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		return fileError(path, err)
	}
	walkKeys("", raw, func(key string) { l.origin[key] = path })
	for key, n := range keyLines(data) {
		l.line[key] = n
	}
	return nil
}

func walkKeys(prefix string, m map[string]any, visit func(string)) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			walkKeys(key, sub, visit)
			continue
		}
		visit(key)
	}
}

// fileError turns go-toml errors into "file:line:col: key K: why".
func fileError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var msgs []string
		for _, e := range strict.Errors {
			row, col := e.Position()
			msgs = append(msgs, fmt.Sprintf("%s:%d:%d: unknown key %q", path, row, col, strings.Join(e.Key(), ".")))
		}
		return fmt.Errorf("invalid configuration: %s", strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if key := strings.Join(de.Key(), "."); key != "" {
			return fmt.Errorf("invalid configuration: %s:%d:%d: key %q: %s", path, row, col, key, de.Error())
		}
		return fmt.Errorf("invalid configuration: %s:%d:%d: %s", path, row, col, de.Error())
	}
	return fmt.Errorf("invalid configuration: %s: %w", path, err)
}

func (l *Loaded) applyOverrides(ov Overrides) {
	set := func(dst *string, v, key, flag string) {
		if v != "" {
			*dst = v
			l.origin[key] = "flag --" + flag
		}
	}
	set(&l.Socket, ov.Socket, "socket", "socket")
	set(&l.Root, ov.Root, "root", "root")
	set(&l.State, ov.State, "state", "state")
	set(&l.LogLevel, ov.LogLevel, "log_level", "log-level")
}

// Marshal renders the configuration as TOML (what `cradle config` prints).
func (c Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := toml.NewEncoder(&buf)
	enc.SetIndentTables(true)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// where names the file and line that set key ("file:12"), the line of the
// nearest table that holds it when the key itself is not in the file
// ([runtime.handlers.x] without a path), or only the origin (flags,
// defaults).
func (l *Loaded) where(key string) string {
	origin := l.Origin(key)
	if !filepath.IsAbs(origin) {
		return origin
	}
	for k := key; k != ""; {
		if n, ok := l.line[k]; ok && l.originOfLine(k) == origin {
			return fmt.Sprintf("%s:%d", origin, n)
		}
		i := strings.LastIndex(k, ".")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return origin
}

// originOfLine is the file a key's (or table's) recorded line belongs to.
func (l *Loaded) originOfLine(key string) string {
	if o, ok := l.origin[key]; ok {
		return o
	}
	return l.Origin(key + ".")
}

// keyLines maps every dotted key and table header of a TOML document to
// its line, so a value that decodes but does not validate can be reported
// where it is written.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = table[:0]
			line := 0
			for it := e.Key(); it.Next(); {
				n := it.Node()
				table = append(table, string(n.Data))
				if line == 0 {
					line = lineOf(&p, n.Data)
				}
			}
			lines[strings.Join(table, ".")] = line
		case unstable.KeyValue:
			parts := append([]string(nil), table...)
			line := 0
			for it := e.Key(); it.Next(); {
				n := it.Node()
				parts = append(parts, string(n.Data))
				if line == 0 {
					line = lineOf(&p, n.Data)
				}
			}
			lines[strings.Join(parts, ".")] = line
		}
	}
	return lines
}

// lineOf is the line of b, a slice of the parser's input; 0 when b was
// allocated (a key with escapes).
func lineOf(p *unstable.Parser, b []byte) int {
	defer func() { _ = recover() }() // Range panics on a slice from elsewhere
	return p.Shape(p.Range(b)).Start.Line
}
