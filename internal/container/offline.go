package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// This file is for tools that work on a root and state dir while no daemon
// runs (cradle check): read-only views of the records and the removal of
// a container nobody has a record of, each step a separate call.

// CorruptSuffix is appended to an unreadable record.json to set it aside.
const CorruptSuffix = ".corrupt"

// RecordInfo is what a container record says about the things it holds.
type RecordInfo struct {
	ID, SandboxID, Handler string
	State                  State
	ImageID                digest.Digest
	// ChainIDs are the layers of the image and of every image volume.
	ChainIDs []digest.Digest
}

// BadRecord is a container dir whose record cannot be used.
type BadRecord struct {
	ID  string
	Err error
}

// Records is the content of <root>/containers.
type Records struct {
	Containers []RecordInfo
	Corrupt    []BadRecord
	// NoRecord are dirs without a record.json: a crash between mkdir and
	// the intent record, or within a removal.
	NoRecord []string
	// SetAside are dirs whose record was renamed to CorruptSuffix.
	SetAside []string
}

// ReadRecords loads every container record under root, as recovery would,
// without acting on any. A missing containers dir is an empty one.
func ReadRecords(root string) (Records, error) {
	var out Records
	ents, err := os.ReadDir(recordRoot(root))
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read container records: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id := e.Name()
		dir := RecordDir(root, id)
		rec, err := load(dir)
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(filepath.Join(dir, recordName+CorruptSuffix)); serr == nil {
				out.SetAside = append(out.SetAside, id)
			} else {
				out.NoRecord = append(out.NoRecord, id)
			}
			continue
		}
		if err == nil {
			_, err = rec.config()
		}
		if err != nil {
			out.Corrupt = append(out.Corrupt, BadRecord{ID: id, Err: err})
			continue
		}
		info := RecordInfo{ID: id, SandboxID: rec.SandboxID, Handler: rec.Handler, State: rec.State, ImageID: rec.ImageID}
		info.ChainIDs = append(info.ChainIDs, rec.ChainIDs...)
		for _, v := range rec.ImageVolumes {
			info.ChainIDs = append(info.ChainIDs, v.ChainIDs...)
		}
		out.Containers = append(out.Containers, info)
	}
	return out, nil
}

// RecordDir is <root>/containers/<id>; BundleDir is <state>/containers/<id>.
func RecordDir(root, id string) string  { return filepath.Join(recordRoot(root), id) }
func BundleDir(state, id string) string { return filepath.Join(stateRoot(state), id) }

// RootfsDir is where the container's overlay is mounted.
func RootfsDir(state, id string) string { return filepath.Join(BundleDir(state, id), "rootfs") }

// SetAside renames the unreadable record of container id out of the way;
// the writable layer beside it stays for an operator.
func SetAside(root, id string) error {
	p := filepath.Join(RecordDir(root, id), recordName)
	return os.Rename(p, p+CorruptSuffix)
}

// RemoveBundle unmounts and removes the bundle of a container without a
// usable record. The runtime's state is the caller's (oci) to delete first.
func RemoveBundle(state, id string) error {
	bundle := BundleDir(state, id)
	if err := unmountRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		return err
	}
	if err := unmountImageVolumes(bundle); err != nil {
		return err
	}
	return os.RemoveAll(bundle)
}
