package layer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// This file is for tools that work on a root while no daemon runs (cradle
// check): what Open would find and discard, without discarding it.

// Contents is what a layer store directory holds.
type Contents struct {
	Layers []Info
	// Broken are entries that are not committed layers (Open discards them).
	Broken []string
	// Temp are leftovers of unpacks and removals under tmp/ (Open wipes them).
	Temp []string
}

// Inspect reads the store at dir without changing it. A missing dir is empty.
func Inspect(dir string) (Contents, error) {
	var c Contents
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("inspect layer store: %w", err)
	}
	for _, ent := range ents {
		name := ent.Name()
		if name == tmpDirName {
			sub, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return c, fmt.Errorf("inspect layer store: %w", err)
			}
			for _, s := range sub {
				c.Temp = append(c.Temp, filepath.Join(tmpDirName, s.Name()))
			}
			continue
		}
		info, err := loadLayer(dir, name)
		if err != nil {
			c.Broken = append(c.Broken, name)
			continue
		}
		c.Layers = append(c.Layers, info)
	}
	return c, nil
}

// RemoveEntry removes <dir>/name (a layer, a broken entry, or tmp/<x>) the
// way the store does: renamed into tmp/ first, so a crash never leaves part
// of a layer under its chain ID.
func RemoveEntry(dir, name string) error {
	if filepath.Dir(name) == tmpDirName {
		return os.RemoveAll(filepath.Join(dir, name))
	}
	if err := os.MkdirAll(filepath.Join(dir, tmpDirName), 0o700); err != nil {
		return err
	}
	s := &Store{dir: dir}
	return s.discard(name)
}

// EntryName is the directory name of the layer chainID.
func EntryName(chainID digest.Digest) string { return chainID.Encoded() }
