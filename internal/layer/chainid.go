package layer

import (
	_ "crypto/sha256" // registers digest.SHA256 for Validate and FromString

	"github.com/opencontainers/go-digest"
)

// ChainID returns the OCI chain ID of a layer with diff ID diffID stacked on
// the chain parent ("" for a base layer): the diff ID itself for a base
// layer, else sha256 of "<parent> <diffID>".
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// ChainIDs returns the chain IDs of a stack of layers given bottom to top.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	if len(diffIDs) == 0 {
		return nil
	}
	out := make([]digest.Digest, len(diffIDs))
	var parent digest.Digest
	for i, d := range diffIDs {
		parent = ChainID(parent, d)
		out[i] = parent
	}
	return out
}
