package fsusage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWalkCountsInodesAndHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	bytes1, inodes1, err := Walk(dir)
	if err != nil {
		t.Fatal(err)
	}
	// dir itself, a, sub
	if inodes1 != 3 || bytes1 < 64<<10 {
		t.Fatalf("Walk = %d bytes, %d inodes", bytes1, inodes1)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "sub", "a-link")); err != nil {
		t.Fatal(err)
	}
	bytes2, inodes2, err := Walk(dir)
	if err != nil {
		t.Fatal(err)
	}
	if inodes2 != inodes1 || bytes2 != bytes1 {
		t.Errorf("a hard link changed the usage: %d/%d → %d/%d", bytes1, inodes1, bytes2, inodes2)
	}
	if _, _, err := Walk(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("an absent dir uses nothing, got %v", err)
	}
}
