package layer

import (
	"path"
	"strings"

	"github.com/cradle-runtime/cradle/internal/errdefs"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes names that aufs-era tools used for their own
	// bookkeeping (".wh..wh.plnk/", ".wh..wh.aufs"); they carry no content.
	whiteoutMeta   = whiteoutPrefix + whiteoutPrefix
	whiteoutOpaque = whiteoutMeta + ".opq"
)

// cleanName turns a tar entry name into a clean path relative to the layer
// root ("." for the root itself). A leading "/" is dropped; a ".." component
// anywhere is rejected rather than resolved, so no name can climb.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errdefs.InvalidArgument("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errdefs.InvalidArgument("name contains a NUL byte")
	}
	rel := strings.TrimLeft(name, "/")
	for part := range strings.SplitSeq(rel, "/") {
		if part == ".." {
			return "", errdefs.InvalidArgument("name has a \"..\" component")
		}
	}
	return path.Clean(rel), nil
}

// splitName splits a clean relative name into its parent ("." at the top)
// and last component.
func splitName(name string) (parent, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ".", name
	}
	return name[:i], name[i+1:]
}

type entryKind int

const (
	plainEntry entryKind = iota
	skipEntry
	opaqueMarker
	whiteoutMarker
)

// classify recognises whiteout markers. A whiteout names something to hide,
// so it can never be a directory with children; aufs metadata is ignored.
func classify(parent, base string) (entryKind, error) {
	if parent != "." {
		for part := range strings.SplitSeq(parent, "/") {
			if strings.HasPrefix(part, whiteoutMeta) {
				return skipEntry, nil
			}
			if strings.HasPrefix(part, whiteoutPrefix) {
				return plainEntry, errdefs.InvalidArgument("whiteout %q used as a directory", part)
			}
		}
	}
	switch {
	case base == whiteoutOpaque:
		return opaqueMarker, nil
	case strings.HasPrefix(base, whiteoutMeta):
		return skipEntry, nil
	case strings.HasPrefix(base, whiteoutPrefix):
		if hidden := base[len(whiteoutPrefix):]; hidden == "" || hidden == "." || hidden == ".." {
			return plainEntry, errdefs.InvalidArgument("whiteout %q hides nothing", base)
		}
		return whiteoutMarker, nil
	}
	return plainEntry, nil
}
