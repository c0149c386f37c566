package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestJSONToYAML(t *testing.T) {
	in := `{"status":{"id":"sha256:abc","repoTags":["a:1","b:2"],"size":"1234","pinned":false,
	"uid":null,"empty":[],"obj":{},"yes":"yes","long":"` + strings.Repeat("x", 120) + `","multi":"a\nb"}}`
	got, err := jsonToYAML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	// Key order kept; numbers-as-strings and YAML 1.1 booleans stay
	// quoted strings; sequences compact under their key; no line folding.
	want := `status:
  id: sha256:abc
  repoTags:
  - a:1
  - b:2
  size: "1234"
  pinned: false
  uid: null
  empty: []
  obj: {}
  "yes": "yes"
  long: ` + strings.Repeat("x", 120) + `
  multi: |-
    a
    b
`
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := jsonToYAML([]byte(`{"a":`)); err == nil {
		t.Error("truncated JSON converted without error")
	}
}

func TestProtoJSONEmitsDefaultsAndIsStable(t *testing.T) {
	raw, err := protoJSON(&runtimeapi.Image{Id: "sha256:abc", Size: 9007199254740993})
	if err != nil {
		t.Fatal(err)
	}
	// Every scalar is present (crictl prints defaults) and 64-bit sizes are
	// strings, exact beyond float64's 2^53.
	want := `{"id":"sha256:abc","repoTags":[],"repoDigests":[],"size":"9007199254740993","username":"","pinned":false}`
	if string(raw) != want {
		t.Errorf("got  %s\nwant %s", raw, want)
	}
	var buf bytes.Buffer
	if err := writeProto(&buf, &runtimeapi.Image{Id: "x"}, formatJSON); err != nil {
		t.Fatal(err)
	}
	wantIndented := "{\n  \"id\": \"x\",\n  \"repoTags\": [],\n  \"repoDigests\": [],\n  \"size\": \"0\",\n  \"username\": \"\",\n  \"pinned\": false\n}\n"
	if buf.String() != wantIndented {
		t.Errorf("indented:\n%q\nwant\n%q", buf.String(), wantIndented)
	}
}

func TestDocumentOrderAndInfo(t *testing.T) {
	var d document
	d.add("status", json.RawMessage(`{"id":"x"}`))
	d.addInfo(map[string]string{
		"zeta":   `{"a": [1, 2]}`,        // JSON object: embedded, compacted
		"alpha":  `"quoted"`,             // JSON-encoded string, as containerd sends
		"plain":  "not json at all",      // becomes a JSON string
		"number": "12345678901234567890", // valid JSON: kept exactly
		"empty":  "",
	})
	raw, err := d.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":{"id":"x"},"alpha":"quoted","empty":"","number":12345678901234567890,"plain":"not json at all","zeta":{"a":[1,2]}}`
	if string(raw) != want {
		t.Errorf("got  %s\nwant %s", raw, want)
	}
	if !json.Valid(raw) {
		t.Error("document is not valid JSON")
	}
	two, err := documentsJSON([]*document{&d, &d})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(two), `[{"status"`) {
		t.Errorf("two documents not an array: %s", two)
	}
}

func TestWriteJSONFormats(t *testing.T) {
	raw := json.RawMessage(`{"status":{"id":"sha256:abc","size":"12"}}`)
	var buf bytes.Buffer
	if err := writeJSON(&buf, raw, formatGoTemplate, "{{.status.id}} {{.status.size}}"); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "sha256:abc 12\n" {
		t.Errorf("template output %q", buf.String())
	}
	buf.Reset()
	if err := writeJSON(&buf, raw, formatGoTemplate, "{{json .status}}"); err != nil {
		t.Fatal(err)
	}
	if buf.String() != `{"id":"sha256:abc","size":"12"}`+"\n" {
		t.Errorf("json func output %q", buf.String())
	}
	for _, tc := range []struct{ format, tmpl string }{
		{formatGoTemplate, ""},
		{formatGoTemplate, "{{.status.nope}}"}, // missing keys are errors, not "<no value>"
		{formatGoTemplate, "{{"},
		{"xml", ""},
	} {
		if err := writeJSON(&buf, raw, tc.format, tc.tmpl); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("format %q template %q: got %v, want invalid argument", tc.format, tc.tmpl, err)
		}
	}
}

func TestTruncateID(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:0123456789abcdef0123": "0123456789abc",
		"0123456789abcdef":            "0123456789abc",
		"short":                       "short",
		"sha256:ab":                   "ab",
	} {
		if got := truncateID(in); got != want {
			t.Errorf("truncateID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTableAlignsLikeCrictl(t *testing.T) {
	var buf bytes.Buffer
	tb := newTable(&buf)
	tb.row("IMAGE", "TAG", "IMAGE ID", "SIZE")
	tb.row("docker.io/library/busybox", "latest", "8c811b4aec35f", "1.15MB")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	// Columns are at least 20 wide and padded by 3.
	want := "IMAGE                       TAG                 IMAGE ID            SIZE\n" +
		"docker.io/library/busybox   latest              8c811b4aec35f       1.15MB\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}
