package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
)

// statusFunc fetches one object's status and the runtime's verbose info.
type statusFunc func(ctx context.Context, rt internalapi.RuntimeService, id string, verbose bool) (proto.Message, map[string]string, error)

// inspectVerb is what `inspect` and `inspectp` differ in.
type inspectVerb struct {
	use, short, long, what, argsHint, templateHint string
	resolve                                        func(ctx context.Context, rt internalapi.RuntimeService, prefix string) (string, error)
	status                                         statusFunc
}

func newInspectCommand() *cobra.Command {
	return newInspectVerb(inspectVerb{
		use:   "inspect [flags] CONTAINER [CONTAINER...]",
		short: "Display the status of one or more containers",
		long: `Display each container's status and, unless -q, the verbose information
the runtime reports. CONTAINER is an ID or a unique ID prefix.`,
		what: "container", argsHint: "at least one CONTAINER", templateHint: "{{.status.state}}",
		resolve: resolveContainerID,
		status: func(ctx context.Context, rt internalapi.RuntimeService, id string, verbose bool) (proto.Message, map[string]string, error) {
			resp, err := rt.ContainerStatus(ctx, id, verbose)
			return resp.GetStatus(), resp.GetInfo(), err
		},
	})
}

func newInspectPodCommand() *cobra.Command {
	return newInspectVerb(inspectVerb{
		use:   "inspectp [flags] POD [POD...]",
		short: "Display the status of one or more pod sandboxes",
		long: `Display each pod's status and, unless -q, the verbose information the
runtime reports. POD is an ID or a unique ID prefix.`,
		what: "pod sandbox", argsHint: "at least one POD", templateHint: "{{.status.id}}",
		resolve: resolvePodID,
		status: func(ctx context.Context, rt internalapi.RuntimeService, id string, verbose bool) (proto.Message, map[string]string, error) {
			resp, err := rt.PodSandboxStatus(ctx, id, verbose)
			return resp.GetStatus(), resp.GetInfo(), err
		},
	})
}

func newInspectVerb(v inspectVerb) *cobra.Command {
	var (
		output, tmpl string
		quiet        bool
	)
	cmd := criCommand(&cobra.Command{
		Use:   v.use,
		Short: v.short,
		Long:  v.long,
		Args:  minArgs(1, v.argsHint),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(output, formatJSON, formatYAML, formatGoTemplate); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			var docs []*document
			for _, arg := range args {
				id, err := v.resolve(ctx, rt, arg)
				if err != nil {
					return err
				}
				st, info, err := v.status(ctx, rt, id, !quiet)
				if err != nil {
					return fmt.Errorf("status of %s %s: %w", v.what, id, rpcError(err))
				}
				status, err := protoJSON(st)
				if err != nil {
					return err
				}
				doc := &document{}
				doc.add("status", status)
				doc.addInfo(info)
				docs = append(docs, doc)
			}
			raw, err := documentsJSON(docs)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), raw, output, tmpl)
		},
	})
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", formatJSON, "output format: json, yaml or go-template")
	fl.BoolVarP(&quiet, "quiet", "q", false, "leave out the runtime's verbose information")
	fl.StringVar(&tmpl, "template", "", "Go template for -o go-template, over the JSON document ("+v.templateHint+")")
	return cmd
}
