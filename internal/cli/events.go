package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newEventsCommand() *cobra.Command {
	var output, tmpl string
	cmd := criCommand(&cobra.Command{
		Use:     "events [flags]",
		Aliases: []string{"event"},
		Short:   "Stream container events",
		Long: `Print container events (created, started, stopped, deleted) as the runtime
sends them through the CRI's GetContainerEvents, until Ctrl-C or until the
runtime ends the stream. Each event is one JSON document (the default), one
YAML document after a "---" line, or the output of --template with -o
go-template, run over the event's JSON ({{.containerId}}, {{.containerEventType}}).`,
		Example: `  cradle events
  cradle events -o go-template --template '{{.containerId}} {{.containerEventType}}'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output, formatJSON, formatYAML, formatGoTemplate); err != nil {
				return err
			}
			switch {
			case output == formatGoTemplate:
				if _, err := parseTemplate(tmpl); err != nil {
					return err
				}
			case tmpl != "":
				return errdefs.InvalidArgument("--template only applies to -o go-template, not %s", output)
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			w, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			return streamEvents(ctx, func(ctx context.Context, ch chan *runtimeapi.ContainerEventResponse) error {
				return rt.GetContainerEvents(ctx, ch, nil)
			}, func(ev *runtimeapi.ContainerEventResponse) error {
				return writeEvent(w, errOut, ev, output, tmpl)
			})
		},
	})
	fl := cmd.Flags()
	fl.StringVarP(&output, "output", "o", formatJSON, "output format: json, yaml or go-template")
	fl.StringVar(&tmpl, "template", "", "Go `TEMPLATE` for -o go-template")
	return cmd
}

// streamEvents prints the events recv delivers until the stream ends.
// Ctrl-C and the runtime closing the stream are normal ends.
func streamEvents(ctx context.Context, recv func(context.Context, chan *runtimeapi.ContainerEventResponse) error,
	print func(*runtimeapi.ContainerEventResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan *runtimeapi.ContainerEventResponse)
	done := make(chan error, 1)
	go func() { done <- recv(ctx, events) }()
	for {
		select {
		case err := <-done:
			switch {
			case ctx.Err() != nil, errors.Is(err, io.EOF):
				return nil
			}
			return fmt.Errorf("container events: %w", rpcError(err))
		case ev := <-events:
			if err := print(ev); err != nil {
				// recv may be blocked handing over the next event:
				// end it and drain until it has returned.
				cancel()
				for {
					select {
					case <-events:
					case <-done:
						return err
					}
				}
			}
		}
	}
}

// writeEvent prints one event. A template that fails on one event is
// reported and the stream goes on, as the next event may well fit it;
// only a failed write ends the stream.
func writeEvent(w, errOut io.Writer, ev *runtimeapi.ContainerEventResponse, format, tmpl string) error {
	raw, err := protoJSON(ev)
	if err != nil {
		return err
	}
	if format == formatYAML {
		if _, err := io.WriteString(w, "---\n"); err != nil {
			return err
		}
	}
	err = writeJSON(w, raw, format, tmpl)
	if errors.Is(err, errdefs.ErrInvalidArgument) {
		fmt.Fprintf(errOut, "Error: event of container %s: %v\n", ev.GetContainerId(), err)
		return nil
	}
	return err
}
