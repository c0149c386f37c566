package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newInfoCommand() *cobra.Command {
	var (
		output, tmpl string
		quiet        bool
	)
	cmd := criCommand(&cobra.Command{
		Use:   "info",
		Short: "Display information of the container runtime",
		Long: `Display the runtime's status and conditions, its runtime handlers and
features and, unless -q, the verbose information the runtime reports.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output, formatJSON, formatYAML, formatGoTemplate); err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			resp, err := rt.Status(ctx, !quiet)
			if err != nil {
				return fmt.Errorf("get the runtime status: %w", rpcError(err))
			}
			var doc document
			status, err := protoJSON(resp.GetStatus())
			if err != nil {
				return err
			}
			doc.add("status", status)
			// crictl prints these two with encoding/json (snake_case keys);
			// here they use the CRI JSON mapping like the status above.
			if len(resp.GetRuntimeHandlers()) > 0 {
				handlers, err := protoJSONList(resp.GetRuntimeHandlers())
				if err != nil {
					return err
				}
				doc.add("runtimeHandlers", handlers)
			}
			if resp.GetFeatures() != nil {
				features, err := protoJSON(resp.GetFeatures())
				if err != nil {
					return err
				}
				doc.add("features", features)
			}
			doc.addInfo(resp.GetInfo())
			raw, err := doc.MarshalJSON()
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), raw, output, tmpl)
		},
	})
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", formatJSON, "output format: json, yaml or go-template")
	fl.BoolVarP(&quiet, "quiet", "q", false, "leave out the runtime's verbose information")
	fl.StringVar(&tmpl, "template", "", "Go template for -o go-template, over the JSON document ({{.status.conditions}})")
	return cmd
}
