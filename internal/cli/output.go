package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Output formats of -o/--output, as crictl names them.
const (
	formatTable      = "table"
	formatJSON       = "json"
	formatYAML       = "yaml"
	formatGoTemplate = "go-template"
)

// checkFormat rejects a format the verb does not offer before any RPC runs.
func checkFormat(format string, allowed ...string) error {
	if slices.Contains(allowed, format) {
		return nil
	}
	return errdefs.InvalidArgument("unsupported output format %q (one of: %s)", format, strings.Join(allowed, ", "))
}

// table writes aligned columns with crictl's spacing (minimum width 20, padding 3).
type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer) *table { return &table{tabwriter.NewWriter(w, 20, 1, 3, ' ', 0)} }

func (t *table) row(cols ...string) { fmt.Fprintln(t.w, strings.Join(cols, "\t")) }

func (t *table) flush() error { return t.w.Flush() }

// protoJSON encodes m in the CRI's canonical JSON (camelCase names, 64-bit
// integers as strings) with every field present, as crictl prints it. The
// result is compact and byte-stable: protojson varies its whitespace from
// build to build on purpose, so callers re-indent with encoding/json.
func protoJSON(m proto.Message) (json.RawMessage, error) {
	b, err := protojson.MarshalOptions{EmitDefaultValues: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// protoJSONList encodes messages as a JSON array (protojson has no slice form).
func protoJSONList[M proto.Message](ms []M) (json.RawMessage, error) {
	raws := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		raw, err := protoJSON(m)
		if err != nil {
			return nil, err
		}
		raws = append(raws, raw)
	}
	return json.Marshal(raws)
}

// writeProto prints one message as indented JSON or as YAML.
func writeProto(w io.Writer, m proto.Message, format string) error {
	raw, err := protoJSON(m)
	if err != nil {
		return err
	}
	return writeJSON(w, raw, format, "")
}

// writeJSON prints a JSON document in the requested format: indented JSON,
// YAML, or a Go template executed over the decoded document.
func writeJSON(w io.Writer, raw json.RawMessage, format, tmpl string) error {
	switch format {
	case formatJSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return err
		}
		buf.WriteByte('\n')
		_, err := w.Write(buf.Bytes())
		return err
	case formatYAML:
		y, err := jsonToYAML(raw)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	case formatGoTemplate:
		return executeTemplate(w, tmpl, raw)
	}
	return errdefs.InvalidArgument("unsupported output format %q", format)
}

// executeTemplate runs a user's Go template over a JSON document, with the
// JSON field names as keys ({{.status.id}}) and a json function for subtrees.
func executeTemplate(w io.Writer, tmpl string, raw json.RawMessage) error {
	t, err := parseTemplate(tmpl)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep integers exact; float64 would round large sizes
	var data any
	if err := dec.Decode(&data); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return errdefs.InvalidArgument("execute template: %v", err)
	}
	if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
		buf.WriteByte('\n')
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// parseTemplate compiles a user's --template, so verbs that print many
// documents can refuse a bad one before any call.
func parseTemplate(tmpl string) (*template.Template, error) {
	if tmpl == "" {
		return nil, errdefs.InvalidArgument("--template is required with -o go-template")
	}
	t, err := template.New("output").Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(tmpl)
	if err != nil {
		return nil, errdefs.InvalidArgument("parse template: %v", err)
	}
	return t, nil
}

// jsonToYAML converts a JSON document to block-style YAML, keeping the key
// order of the JSON. JSON is valid YAML, so parsing it into a node tree and
// re-emitting it without the flow and quoting styles gives plain YAML; the
// encoder still quotes strings that would otherwise read as numbers or
// booleans ("size": "1234" stays a string).
func jsonToYAML(raw []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("convert JSON to YAML: %w", err)
	}
	clearStyle(&doc)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent() // "- item" under its key, as kubectl and crictl print it
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("convert JSON to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func clearStyle(n *yaml.Node) {
	n.Style = 0
	// YAML 1.1 readers (PyYAML, yaml.v2) take these for booleans; the 1.2
	// encoder would print them bare.
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && yaml11Bools[strings.ToLower(n.Value)] {
		n.Style = yaml.DoubleQuotedStyle
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}

var yaml11Bools = map[string]bool{"y": true, "yes": true, "n": true, "no": true, "on": true, "off": true}

// document is a JSON object whose members keep the order they were added in,
// so a status comes before its details however the keys sort.
type document struct {
	keys []string
	vals []json.RawMessage
}

func (d *document) add(key string, raw json.RawMessage) {
	d.keys = append(d.keys, key)
	d.vals = append(d.vals, raw)
}

// addInfo adds a runtime's verbose info map, sorted by key. Runtimes put JSON
// in the values (containerd even JSON-encodes plain strings), so a value that
// parses as JSON is embedded as such and anything else becomes a string.
func (d *document) addInfo(info map[string]string) {
	keys := make([]string, 0, len(info))
	for k := range info {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := info[k]
		if json.Valid([]byte(v)) {
			var buf bytes.Buffer
			_ = json.Compact(&buf, []byte(v)) // cannot fail: v is valid JSON
			d.add(k, buf.Bytes())
			continue
		}
		s, _ := json.Marshal(v)
		d.add(k, s)
	}
}

func (d *document) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range d.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(d.vals[i])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// documentsJSON encodes one document as an object and several as an array,
// the shape crictl gives inspect output.
func documentsJSON(docs []*document) (json.RawMessage, error) {
	if len(docs) == 1 {
		return docs[0].MarshalJSON()
	}
	return json.Marshal(docs)
}

// truncateID shortens an ID for tables: without its algorithm prefix and
// cut to 13 characters, like crictl.
func truncateID(id string) string {
	if i := strings.IndexByte(id, ':'); i >= 0 {
		id = id[i+1:]
	}
	if len(id) > 13 {
		id = id[:13]
	}
	return id
}
