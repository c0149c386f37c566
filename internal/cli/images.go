package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const none = "<none>"

type imagesFlags struct {
	output                          string
	quiet, verbose, digests, pinned bool
	noTrunc                         bool
}

func newImagesCommand() *cobra.Command {
	var f imagesFlags
	cmd := criCommand(&cobra.Command{
		Use:     "images [flags] [REPOSITORY[:TAG]]",
		Aliases: []string{"image", "img"},
		Short:   "List images",
		Long: `List the runtime's images, sorted by their first tag. With an argument,
only the images the runtime matches to that reference.`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runImages(cmd, args, &f) },
	})
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, json or yaml")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "only print image IDs")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "print every field of each image")
	fl.BoolVar(&f.digests, "digests", false, "add a DIGEST column")
	fl.BoolVar(&f.pinned, "pinned", false, "add a PINNED column")
	fl.BoolVar(&f.noTrunc, "no-trunc", false, "print full image IDs and digests")
	return cmd
}

func runImages(cmd *cobra.Command, args []string, f *imagesFlags) error {
	if err := checkFormat(f.output, formatTable, formatJSON, formatYAML); err != nil {
		return err
	}
	ctx := cmd.Context()
	c := clientFor(cmd)
	img, err := c.Image(ctx)
	if err != nil {
		return err
	}
	var filter *runtimeapi.ImageFilter
	if len(args) == 1 {
		filter = &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: args[0]}}
	}
	images, err := img.ListImages(ctx, filter)
	if err != nil {
		return fmt.Errorf("list images: %w", rpcError(err))
	}
	sortImages(images)

	w := cmd.OutOrStdout()
	switch {
	case f.output != formatTable:
		return writeProto(w, &runtimeapi.ListImagesResponse{Images: images}, f.output)
	case f.quiet:
		for _, im := range images {
			fmt.Fprintln(w, im.GetId())
		}
		return nil
	case f.verbose:
		printImagesVerbose(w, images)
		return nil
	}
	return printImagesTable(w, images, f)
}

// sortImages orders images by their first tag, else first digest, else ID,
// like crictl, so output is stable whatever order the runtime keeps.
func sortImages(images []*runtimeapi.Image) {
	key := func(im *runtimeapi.Image) string {
		switch {
		case len(im.RepoTags) > 0:
			return im.RepoTags[0]
		case len(im.RepoDigests) > 0:
			return im.RepoDigests[0]
		}
		return im.Id
	}
	slices.SortStableFunc(images, func(a, b *runtimeapi.Image) int { return strings.Compare(key(a), key(b)) })
}

func printImagesTable(w io.Writer, images []*runtimeapi.Image, f *imagesFlags) error {
	t := newTable(w)
	header := []string{"IMAGE", "TAG"}
	if f.digests {
		header = append(header, "DIGEST")
	}
	header = append(header, "IMAGE ID", "SIZE")
	if f.pinned {
		header = append(header, "PINNED")
	}
	t.row(header...)
	for _, im := range images {
		repo, digest := splitRepoDigest(im.RepoDigests)
		id := im.Id
		if !f.noTrunc {
			id = truncateID(id)
			if digest != none {
				digest = truncateID(digest)
			}
		}
		size := humanSize(im.Size)
		// One row per tag, like crictl; an untagged image (pulled by
		// digest) gets one row named after its digest's repository.
		for _, rt := range repoTagPairs(im.RepoTags, repo) {
			row := []string{rt[0], rt[1]}
			if f.digests {
				row = append(row, digest)
			}
			row = append(row, id, size)
			if f.pinned {
				row = append(row, strconv.FormatBool(im.Pinned))
			}
			t.row(row...)
		}
	}
	return t.flush()
}

func printImagesVerbose(w io.Writer, images []*runtimeapi.Image) {
	for _, im := range images {
		fmt.Fprintf(w, "ID: %s\n", im.Id)
		for _, tag := range im.RepoTags {
			fmt.Fprintf(w, "RepoTags: %s\n", tag)
		}
		for _, d := range im.RepoDigests {
			fmt.Fprintf(w, "RepoDigests: %s\n", d)
		}
		if im.Size != 0 {
			fmt.Fprintf(w, "Size: %d\n", im.Size)
		}
		if im.Uid != nil {
			fmt.Fprintf(w, "Uid: %d\n", im.Uid.GetValue())
		}
		if im.Username != "" {
			fmt.Fprintf(w, "Username: %s\n", im.Username)
		}
		if im.Pinned {
			fmt.Fprintf(w, "Pinned: %t\n", im.Pinned)
		}
		fmt.Fprintln(w)
	}
}

// splitRepoDigest splits the first repo digest into repository and digest.
func splitRepoDigest(digests []string) (repo, digest string) {
	if len(digests) == 0 {
		return none, none
	}
	repo, digest, ok := strings.Cut(digests[0], "@")
	if !ok {
		return none, none
	}
	return repo, digest
}

// repoTagPairs splits each "repository:tag" at the tag's colon, the last one
// after the last slash, so a registry port ("localhost:5000/app") is not
// mistaken for a tag.
func repoTagPairs(tags []string, untaggedRepo string) [][2]string {
	if len(tags) == 0 {
		return [][2]string{{untaggedRepo, none}}
	}
	pairs := make([][2]string, 0, len(tags))
	for _, t := range tags {
		i := strings.LastIndexByte(t, ':')
		if i <= strings.LastIndexByte(t, '/') {
			pairs = append(pairs, [2]string{t, none})
			continue
		}
		pairs = append(pairs, [2]string{t[:i], t[i+1:]})
	}
	return pairs
}
