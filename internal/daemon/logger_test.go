package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLoggerFormatsAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log, level := NewLogger(&buf, "info", "json")
	log.Debug("hidden")
	log.Info("shown", "handler", "runc")
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("log_format json: not one JSON object per line: %v\n%s", err, buf.String())
	}
	if line["msg"] != "shown" || line["level"] != "INFO" || line["handler"] != "runc" {
		t.Errorf("json line = %v", line)
	}
	// A reload sets the level through the LevelVar.
	level.Set(slog.LevelDebug)
	buf.Reset()
	log.Debug("now shown")
	if !strings.Contains(buf.String(), `"msg":"now shown"`) {
		t.Errorf("debug after the level changed: %q", buf.String())
	}
	buf.Reset()
	text, _ := NewLogger(&buf, "warn", "text")
	text.Info("hidden")
	text.Warn("shown")
	if got := buf.String(); !strings.HasPrefix(got, "time=") || !strings.Contains(got, `level=WARN msg=shown`) || strings.Contains(got, "hidden") {
		t.Errorf("text log = %q", got)
	}
}
