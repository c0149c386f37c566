package check

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// WriteText writes one line per finding, then a summary line. Each line is
// key=value pairs with fixed keys in a fixed order (kind, object, problem,
// action, then result and error after a repair, detail last), so that grep
// and awk find what they look for.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, f := range r.Findings {
		writeFinding(&b, "", f)
	}
	if r.Repaired {
		for _, f := range r.Remaining {
			writeFinding(&b, "remaining ", f)
		}
	}
	for _, s := range r.Incomplete {
		fmt.Fprintf(&b, "incomplete error=%s\n", quote(s))
	}
	b.WriteString(r.Summary())
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFinding(b *strings.Builder, prefix string, f Finding) {
	fmt.Fprintf(b, "%skind=%s object=%s problem=%s action=%s", prefix, f.Kind, quote(f.Object), f.Problem, quote(f.Action))
	if f.Result != "" {
		fmt.Fprintf(b, " result=%s", f.Result)
	}
	if f.Error != "" {
		fmt.Fprintf(b, " error=%s", quote(f.Error))
	}
	if f.Detail != "" {
		fmt.Fprintf(b, " detail=%s", quote(f.Detail))
	}
	b.WriteByte('\n')
}

// Summary is the last line of WriteText.
func (r *Report) Summary() string {
	s := fmt.Sprintf("summary problems=%d", len(r.Findings))
	if r.Repaired {
		repaired, failed := 0, 0
		for _, f := range r.Findings {
			switch f.Result {
			case "repaired":
				repaired++
			case "failed":
				failed++
			}
		}
		s += fmt.Sprintf(" repaired=%d failed=%d remaining=%d", repaired, failed, len(r.Remaining))
	}
	if len(r.Incomplete) > 0 {
		s += fmt.Sprintf(" incomplete=%d", len(r.Incomplete))
	}
	if r.Clean() {
		return s + " status=clean"
	}
	return s + " status=inconsistent"
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		*Report
		Clean bool `json:"clean"`
	}{r, r.Clean()})
}

// quote leaves simple values bare and quotes the rest Go-style.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"=\\") {
		return s
	}
	return strconv.Quote(s)
}
