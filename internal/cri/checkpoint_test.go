package cri

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

func TestEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := emptyDir("X", "output_path", dir); err != nil {
		t.Errorf("empty dir: %v", err)
	}
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{
		"non-empty": dir, "a file": file, "missing": filepath.Join(dir, "nope"), "relative": "out", "empty": "",
	} {
		if err := emptyDir("X", "output_path", p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}
