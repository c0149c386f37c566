package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/cradle-runtime/cradle/internal/errdefs"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// watchInterval is the pause between two refreshes of stats --watch.
const watchInterval = time.Second

// sampleFlags are the options stats and statsp share.
type sampleFlags struct {
	id      string
	labels  []string
	output  string
	seconds int
	watch   bool
}

func (f *sampleFlags) register(fl *pflag.FlagSet, what string) {
	fl.StringVar(&f.id, "id", "", "only the "+what+" with this `ID` or unique ID prefix (or give it as the argument)")
	fl.StringArrayVar(&f.labels, "label", nil, "only "+what+"s with this `KEY=VALUE` label (repeatable)")
	fl.StringVarP(&f.output, "output", "o", formatTable, "output format: table, json or yaml")
	fl.IntVarP(&f.seconds, "seconds", "s", 1, "`SECONDS` between the two samples the CPU % of the table comes from; 0: the runtime's own rate")
	fl.BoolVarP(&f.watch, "watch", "w", false, "refresh until Ctrl-C")
}

// check validates the flags and the optional ID argument before any call.
func (f *sampleFlags) check(args []string) (map[string]string, error) {
	if err := checkFormat(f.output, formatTable, formatJSON, formatYAML); err != nil {
		return nil, err
	}
	if f.seconds < 0 {
		return nil, errdefs.InvalidArgument("--seconds must not be negative, got %d", f.seconds)
	}
	if len(args) == 1 {
		if f.id != "" {
			return nil, &usageError{fmt.Errorf("give the ID either as an argument or with --id, not both")}
		}
		f.id = args[0]
	}
	return labelSelector(f.labels)
}

func newStatsCommand() *cobra.Command {
	var (
		f   sampleFlags
		all bool
		pod string
	)
	cmd := criCommand(&cobra.Command{
		Use:   "stats [flags] [CONTAINER]",
		Short: "Show the resource usage of containers",
		Long: `Show CPU, memory, writable-layer and swap usage of running containers, from the
CRI's ListContainerStats. The table's CPU % is the CPU time used between two
samples --seconds apart, over the time between them (100% is one core); the
json and yaml outputs print one sample as the runtime gave it.`,
		Example: `  cradle stats
  cradle stats -o json 3f2a
  cradle stats -w --pod 9c1e`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := f.check(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			filter := &runtimeapi.ContainerStatsFilter{LabelSelector: labels}
			if f.id != "" {
				if filter.Id, err = resolveContainerID(ctx, rt, f.id); err != nil {
					return err
				}
			}
			if pod != "" {
				if filter.PodSandboxId, err = resolvePodID(ctx, rt, pod); err != nil {
					return err
				}
			}
			s := &containerStatsView{rt: rt, filter: filter, flags: &f, all: all}
			out := cmd.OutOrStdout()
			return watchLoop(ctx, out, f.watch, clientFor(cmd).env.isTerminal(out), s.show)
		},
	})
	fl := cmd.Flags()
	f.register(fl, "container")
	fl.BoolVarP(&all, "all", "a", false, "also list containers that use no CPU and memory (not running)")
	fl.StringVarP(&pod, "pod", "p", "", "only containers of this `POD` (ID or unique ID prefix)")
	return cmd
}

type containerStatsView struct {
	rt     internalapi.RuntimeService
	filter *runtimeapi.ContainerStatsFilter
	flags  *sampleFlags
	all    bool
}

func (v *containerStatsView) list(ctx context.Context) ([]*runtimeapi.ContainerStats, error) {
	stats, err := v.rt.ListContainerStats(ctx, v.filter)
	if err != nil {
		return nil, fmt.Errorf("list container stats: %w", rpcError(err))
	}
	slices.SortFunc(stats, func(a, b *runtimeapi.ContainerStats) int {
		return cmp.Compare(a.GetAttributes().GetId(), b.GetAttributes().GetId())
	})
	return stats, nil
}

func (v *containerStatsView) show(ctx context.Context, w io.Writer) error {
	first, err := v.list(ctx)
	if err != nil {
		return err
	}
	if v.flags.output != formatTable {
		return writeProto(w, &runtimeapi.ListContainerStatsResponse{Stats: first}, v.flags.output)
	}
	cur, prev, err := secondSample(ctx, v.flags.seconds, first, v.list, func(s *runtimeapi.ContainerStats) string { return s.GetAttributes().GetId() })
	if err != nil {
		return err
	}
	t := newTable(w)
	t.row("CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES", "SWAP")
	for _, s := range cur {
		cpu, mem := s.GetCpu(), s.GetMemory().GetWorkingSetBytes().GetValue()
		if !v.all && cpu.GetUsageCoreNanoSeconds().GetValue() == 0 && mem == 0 {
			continue // not running
		}
		old, ok := prev[s.GetAttributes().GetId()]
		if !ok {
			continue // appeared between the samples: no rate yet
		}
		t.row(truncateID(s.GetAttributes().GetId()), s.GetAttributes().GetMetadata().GetName(),
			cpuPercent(old.GetCpu(), cpu), statSize(mem),
			statSize(s.GetWritableLayer().GetUsedBytes().GetValue()),
			strconv.FormatUint(s.GetWritableLayer().GetInodesUsed().GetValue(), 10),
			statSize(s.GetSwap().GetSwapUsageBytes().GetValue()))
	}
	return t.flush()
}

// secondSample waits seconds and lists again, returning the new list and
// the first one by ID; with 0 seconds the first list is both.
func secondSample[T any](ctx context.Context, seconds int, first []T, list func(context.Context) ([]T, error), id func(T) string) ([]T, map[string]T, error) {
	prev := make(map[string]T, len(first))
	for _, s := range first {
		prev[id(s)] = s
	}
	if seconds == 0 {
		return first, prev, nil
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(time.Duration(seconds) * time.Second):
	}
	cur, err := list(ctx)
	return cur, prev, err
}

// cpuPercent is the CPU use between two samples in percent of one core.
// Runtimes sample on their own schedule (cradle every 10 s), so the second
// sample may carry the first one's timestamp; the runtime's own rate over
// its last window (usageNanoCores) stands in then, and "-" when it has none.
func cpuPercent(old, cur *runtimeapi.CpuUsage) string {
	used := cur.GetUsageCoreNanoSeconds().GetValue()
	if used == 0 {
		return "0.00"
	}
	oldUsed := old.GetUsageCoreNanoSeconds().GetValue()
	if dt := cur.GetTimestamp() - old.GetTimestamp(); dt > 0 && used >= oldUsed {
		return fmt.Sprintf("%.2f", float64(used-oldUsed)/float64(dt)*100)
	}
	if nc := cur.GetUsageNanoCores(); nc != nil {
		return fmt.Sprintf("%.2f", float64(nc.GetValue())/1e7)
	}
	return "-"
}

// statSize is a byte count as crictl's stats tables print it (go-units'
// HumanSize: four significant digits).
func statSize(n uint64) string { return humanSizePrecision(float64(n), 4) }

// watchLoop shows once, or with watch until ctx ends (Ctrl-C, which is the
// normal way out). Each refresh is rendered whole before it replaces the
// previous one, so a terminal (clear) never shows a blank screen while a
// sample is taken.
func watchLoop(ctx context.Context, w io.Writer, watch, clear bool, show func(context.Context, io.Writer) error) error {
	if !watch {
		return show(ctx, w)
	}
	for {
		var buf bytes.Buffer
		if err := show(ctx, &buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if clear {
			fmt.Fprint(w, "\033[2J\033[H")
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchInterval):
		}
	}
}
