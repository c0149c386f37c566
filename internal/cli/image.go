package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newInspectImageCommand() *cobra.Command {
	var (
		output, tmpl string
		quiet        bool
	)
	cmd := criCommand(&cobra.Command{
		Use:   "inspecti [flags] IMAGE [IMAGE...]",
		Short: "Display the status of one or more images",
		Long: `Display each image's status and, unless -q, the verbose information the
runtime reports. IMAGE is a reference or an image ID.`,
		Args: minArgs(1, "at least one IMAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output, formatJSON, formatYAML, formatGoTemplate, formatTable); err != nil {
				return err
			}
			ctx := cmd.Context()
			img, err := clientFor(cmd).Image(ctx)
			if err != nil {
				return err
			}
			var docs []*document
			w := cmd.OutOrStdout()
			for _, name := range args {
				resp, err := imageStatus(ctx, img, name, !quiet)
				if err != nil {
					return err
				}
				if output == formatTable {
					printImageStatus(w, resp, !quiet)
					continue
				}
				status, err := protoJSON(resp.Image)
				if err != nil {
					return err
				}
				doc := &document{}
				doc.add("status", status)
				doc.addInfo(resp.Info)
				docs = append(docs, doc)
			}
			if output == formatTable {
				return nil
			}
			raw, err := documentsJSON(docs)
			if err != nil {
				return err
			}
			return writeJSON(w, raw, output, tmpl)
		},
	})
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", formatJSON, "output format: json, yaml, go-template or table")
	fl.BoolVarP(&quiet, "quiet", "q", false, "leave out the runtime's verbose information")
	fl.StringVar(&tmpl, "template", "", "Go template for -o go-template, over the JSON document ({{.status.id}})")
	return cmd
}

// imageStatus asks for one image and turns "not present" (a nil image, which
// the CRI answers instead of an error) into a NotFound error.
func imageStatus(ctx context.Context, img internalapi.ImageManagerService, name string, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	resp, err := img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: name}, verbose)
	if err != nil {
		return nil, fmt.Errorf("image status of %q: %w", name, rpcError(err))
	}
	if resp.GetImage() == nil {
		return nil, errdefs.NotFound("no such image %q", name)
	}
	return resp, nil
}

func printImageStatus(w io.Writer, resp *runtimeapi.ImageStatusResponse, verbose bool) {
	im := resp.Image
	fmt.Fprintf(w, "ID: %s\n", im.Id)
	for _, tag := range im.RepoTags {
		fmt.Fprintf(w, "Tag: %s\n", tag)
	}
	for _, d := range im.RepoDigests {
		fmt.Fprintf(w, "Digest: %s\n", d)
	}
	fmt.Fprintf(w, "Size: %s\n", humanSize(im.Size))
	if verbose {
		var doc document
		doc.addInfo(resp.Info)
		raw, _ := doc.MarshalJSON() // cannot fail: members are valid JSON
		fmt.Fprintf(w, "Info: %s\n", raw)
	}
}

func newRemoveImageCommand() *cobra.Command {
	var all, prune bool
	cmd := criCommand(&cobra.Command{
		Use:   "rmi [flags] IMAGE [IMAGE...]",
		Short: "Remove one or more images",
		Long: `Remove images given by reference or ID, or all of them (-a), or those no
container uses (--prune; pinned images are kept).`,
		RunE: func(cmd *cobra.Command, args []string) error { return runRemoveImages(cmd, args, all, prune) },
	})
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "remove all images")
	fl.BoolVarP(&prune, "prune", "q", false, "remove all images no container uses")
	return cmd
}

func runRemoveImages(cmd *cobra.Command, args []string, all, prune bool) error {
	if len(args) == 0 && !all && !prune {
		return &usageError{errors.New(`"cradle rmi" needs an IMAGE, --all or --prune`)}
	}
	ctx := cmd.Context()
	c := clientFor(cmd)
	img, err := c.Image(ctx)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()

	// Resolve everything to images first: two names of one image must not
	// remove it twice, and the removal then names the exact image found.
	var targets []*runtimeapi.Image
	seen := map[string]bool{}
	add := func(im *runtimeapi.Image) {
		if !seen[im.Id] {
			seen[im.Id] = true
			targets = append(targets, im)
		}
	}
	failed := false
	for _, name := range args {
		resp, err := imageStatus(ctx, img, name, false)
		if err != nil {
			fmt.Fprintf(stderr, "Error: %v\n", err)
			failed = true
			continue
		}
		add(resp.Image)
	}
	if all || prune {
		images, err := img.ListImages(ctx, nil)
		if err != nil {
			return fmt.Errorf("list images: %w", rpcError(err))
		}
		sortImages(images)
		var inUse map[string]bool
		if prune {
			if inUse, err = imagesInUse(ctx, c, img); err != nil {
				return err
			}
		}
		for _, im := range images {
			if prune && !all && (im.Pinned || inUse[im.Id]) {
				c.log.Debug("keeping image", "id", im.Id, "pinned", im.Pinned, "inUse", inUse[im.Id])
				continue
			}
			add(im)
		}
	}
	if len(targets) == 0 && !failed {
		fmt.Fprintln(stderr, "No images to remove")
		return nil
	}

	w := cmd.OutOrStdout()
	for _, im := range targets {
		if err := img.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: im.Id}); err != nil {
			fmt.Fprintf(stderr, "Error: remove image %s: %v\n", im.Id, rpcError(err))
			failed = true
			continue
		}
		// Name what was deleted the way the user knows it: its tags, or
		// its digests when it was pulled by digest, or its ID.
		names := im.RepoTags
		if len(names) == 0 {
			names = im.RepoDigests
		}
		if len(names) == 0 {
			names = []string{im.Id}
		}
		for _, n := range names {
			fmt.Fprintf(w, "Deleted: %s\n", n)
		}
	}
	if failed {
		return errors.New("unable to remove the image(s)")
	}
	return nil
}

// imagesInUse returns the IDs of the images any container uses, in any
// state: an exited container can be restarted and still needs its image.
func imagesInUse(ctx context.Context, c *client, img internalapi.ImageManagerService) (map[string]bool, error) {
	rt, err := c.Runtime(ctx)
	if err != nil {
		return nil, err
	}
	containers, err := rt.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list containers to find unused images: %w", rpcError(err))
	}
	inUse := map[string]bool{}
	for _, ctr := range containers {
		// image_id is the image's ID where the runtime fills it (CRI 1.31+);
		// otherwise resolve the container's image spec, as crictl does.
		if id := ctr.GetImageId(); id != "" {
			inUse[id] = true
			continue
		}
		ref := ctr.GetImageRef()
		if ref == "" {
			ref = ctr.GetImage().GetImage()
		}
		if ref == "" {
			continue
		}
		resp, err := img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
		if err != nil {
			return nil, fmt.Errorf("image of container %s: %w", ctr.GetId(), rpcError(err))
		}
		if resp.GetImage() != nil {
			inUse[resp.GetImage().GetId()] = true
		}
	}
	return inUse, nil
}

func newImageFsInfoCommand() *cobra.Command {
	var output, tmpl string
	cmd := criCommand(&cobra.Command{
		Use:   "imagefsinfo",
		Short: "Display image filesystem usage",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output, formatJSON, formatYAML, formatGoTemplate, formatTable); err != nil {
				return err
			}
			ctx := cmd.Context()
			img, err := clientFor(cmd).Image(ctx)
			if err != nil {
				return err
			}
			resp, err := img.ImageFsInfo(ctx)
			if err != nil {
				return fmt.Errorf("image filesystem info: %w", rpcError(err))
			}
			w := cmd.OutOrStdout()
			if output == formatTable {
				return printFsUsage(w, resp)
			}
			status, err := protoJSON(resp)
			if err != nil {
				return err
			}
			var doc document
			doc.add("status", status)
			raw, err := doc.MarshalJSON()
			if err != nil {
				return err
			}
			return writeJSON(w, raw, output, tmpl)
		},
	})
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", formatJSON, "output format: json, yaml, go-template or table")
	fl.StringVar(&tmpl, "template", "", "Go template for -o go-template, over the JSON document")
	return cmd
}

func printFsUsage(w io.Writer, resp *runtimeapi.ImageFsInfoResponse) error {
	t := newTable(w)
	t.row("FILESYSTEM", "MOUNTPOINT", "USED", "INODES", "TIMESTAMP")
	for _, g := range []struct {
		kind string
		fs   []*runtimeapi.FilesystemUsage
	}{{"image", resp.ImageFilesystems}, {"container", resp.ContainerFilesystems}} {
		for _, u := range g.fs {
			t.row(g.kind, u.GetFsId().GetMountpoint(), humanSizePrecision(float64(u.GetUsedBytes().GetValue()), 4),
				fmt.Sprint(u.GetInodesUsed().GetValue()), fmt.Sprint(u.GetTimestamp()))
		}
	}
	return t.flush()
}
